-- wrk -s bench/wrk/write.lua URL -- PREFIX VALUE_BYTES
-- POST /kv with a unique key per request ("PREFIX-<thread>-<n>") and a ~VALUE_BYTES value.
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
require("common")

local headers = { ["Content-Type"] = "application/json" }
local n = 0

function init(args)
  prefix = args[1] or tostring(os.time())
  value = string.rep("v", math.max(1, (tonumber(args[2]) or 100) - 2))
end

function request()
  n = n + 1
  return wrk.format("POST", "/kv", headers,
    '{"key":"' .. prefix .. "-" .. tid .. "-" .. n .. '","value":"' .. value .. '"}')
end
