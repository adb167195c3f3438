-- wrk -tT -s bench/wrk/load.lua URL -- PREFIX COUNT VALUE_BYTES T
-- Writes keys PREFIX-0 .. PREFIX-(COUNT-1) once each (thread t of T takes every T-th), then
-- each thread stops. wrk itself still waits for its -d: bench/bench.py interrupts it once the
-- store holds COUNT keys. A few keys past COUNT may be written by requests in flight, and a
-- few below it skipped (wrk calls request() once to check the script before sending).
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
require("common")

local headers = { ["Content-Type"] = "application/json" }

function init(args)
  prefix = args[1]
  count = tonumber(args[2])
  value = string.rep("v", math.max(1, (tonumber(args[3]) or 100) - 2))
  nthreads = tonumber(args[4]) or 1
  nextkey = tid - 1
  answered = 0
  quota = math.floor(count / nthreads) + ((tid - 1) < (count % nthreads) and 1 or 0)
end

function request()
  local k = nextkey
  nextkey = nextkey + nthreads
  return wrk.format("POST", "/kv", headers, '{"key":"' .. prefix .. "-" .. k .. '","value":"' .. value .. '"}')
end

function response(status, headers, body)
  answered = answered + 1
  if answered >= quota then
    wrk.thread:stop()
  end
end
