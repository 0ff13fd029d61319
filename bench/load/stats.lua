-- Shared by every wrk scenario: counts answers by status per thread and prints one JSON line
-- (throughput, latency percentiles, statuses, socket errors) for run.py to read.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  codes = {}
  counter = 0
  if scenario_init then scenario_init(args) end
end

function response(status, headers, body)
  local key = tostring(status)
  if status >= 400 then
    -- which error: {"error":{"code":"busy",...}}
    key = key .. ":" .. (string.match(body or "", '"code":"([%w_]+)"') or "?")
  end
  codes[key] = (codes[key] or 0) + 1
end

function done(summary, latency, requests)
  local all = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("codes")) do
      all[code] = (all[code] or 0) + n
    end
  end
  local parts = {}
  for code, n in pairs(all) do
    table.insert(parts, string.format('"%s":%d', code, n))
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"codes":{%s},"connect":%d,"read":%d,"write":%d,"timeout":%d,"status_errors":%d}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, table.concat(parts, ","), e.connect, e.read, e.write,
    e.timeout, e.status))
end
