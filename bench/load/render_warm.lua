-- The same chart URL every time with the ETag the server gave: a dashboard revalidating
-- (304 after one aggregate query, no drawing).
dofile(os.getenv("BP_LOAD_DIR") .. "/stats.lua")

local url = os.getenv("BP_LOAD_PATH")
local token = os.getenv("BP_LOAD_TOKEN")
local etag = os.getenv("BP_LOAD_ETAG")

request = function()
  return wrk.format("GET", url, {["Authorization"] = "Bearer " .. token, ["If-None-Match"] = etag})
end
