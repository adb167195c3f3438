-- wrk -s bench/wrk/read.lua URL -- KEYFILE
-- GET /kv/<key> for keys picked at random from KEYFILE (one key a line, URL-safe: keys that
-- bench/bench.py read back from the store after bench/wrk/load.lua wrote them).
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
require("common")

function init(args)
  local keys = {}
  for line in io.lines(args[1]) do
    if line ~= "" then keys[#keys + 1] = line end
  end
  assert(#keys > 0, "no keys in " .. args[1])
  math.randomseed(os.time() + tid * 7919)
  -- Pre-build the requests: building each one is what limits wrk on a small machine.
  reqs = {}
  for i = 1, 4096 do
    reqs[i] = wrk.format("GET", "/kv/" .. keys[math.random(1, #keys)])
  end
  n = 0
end

function request()
  n = n + 1
  return reqs[(n % 4096) + 1]
end
