-- GET /charts/<metric>.png with a `to` that changes every request, so every answer is a fresh
-- drawing with its own ETag (nothing a client cache could serve).
dofile(os.getenv("BP_LOAD_DIR") .. "/stats.lua")

local base = tonumber(os.getenv("BP_LOAD_TO"))
local path = os.getenv("BP_LOAD_PATH")
local token = os.getenv("BP_LOAD_TOKEN")

request = function()
  counter = counter + 1
  -- distinct per thread and request: seconds before the base time
  local to = base - (id * 20000 + counter % 20000)
  return wrk.format("GET", path .. "&to=" .. to_rfc3339(to), {["Authorization"] = "Bearer " .. token})
end

function to_rfc3339(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", t)
end
