-- Shared by the wrk scripts of bench/run.sh: thread numbering and a JSON line of results.
-- Each wrk thread runs in its own Lua state; setup() numbers them 1, 2, ... (a thread starts
-- right after its own setup, so it cannot learn how many threads follow: pass that as an arg).
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d,'
      .. '"mean_us":%.1f,"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
