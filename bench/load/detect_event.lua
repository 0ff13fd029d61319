-- POST of a dev.bizpulse.metrics.aggregated.v1 CloudEvent (binary mode), each with a new id, so
-- every one is scored and recorded (none is a duplicate).
dofile(os.getenv("BP_LOAD_DIR") .. "/stats.lua")

local body = os.getenv("BP_LOAD_BODY")
local run = os.getenv("BP_LOAD_RUN")

request = function()
  counter = counter + 1
  return wrk.format("POST", "/", {
    ["Content-Type"] = "application/json",
    ["ce-specversion"] = "1.0",
    ["ce-type"] = "dev.bizpulse.metrics.aggregated.v1",
    ["ce-source"] = "/bizpulse/bench/load",
    ["ce-id"] = run .. "-" .. id .. "-" .. counter,
  }, body)
end
