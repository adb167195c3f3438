-- wrk -s bench/wrk/etcd-put.lua URL -- PREFIX VALUE_BYTES
-- etcd's durable put through its JSON gateway, the same load as write.lua puts on walab:
-- POST /v3/kv/put {"key": base64, "value": base64} with a unique key per request
-- ("PREFIX-<thread>-_<n>", n zero-padded to 9 digits) and the same ~VALUE_BYTES value
-- (VALUE_BYTES - 2 bytes of "v", as write.lua's JSON string and k6/compare.js send).
-- Base64 costs no Lua work per request: the key's head is padded to a multiple of 3 bytes
-- and encoded once, and the counter is 3 groups of 3 digits, each looked up in a table.
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
require("common")

local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function sextet(n)
  return ALPHABET:sub(n + 1, n + 1)
end

-- Standard base64 (RFC 4648, with padding), as etcd's gateway decodes bytes fields.
function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    out[#out + 1] = sextet(math.floor(n / 262144) % 64) .. sextet(math.floor(n / 4096) % 64)
      .. (b and sextet(math.floor(n / 64) % 64) or "=") .. (c and sextet(n % 64) or "=")
  end
  return table.concat(out)
end

local headers = { ["Content-Type"] = "application/json" }
local n = 0

function init(args)
  local prefix = args[1] or tostring(os.time())
  local value = string.rep("v", math.max(1, (tonumber(args[2]) or 100) - 2))
  local head = prefix .. "-" .. tid .. "-"
  while #head % 3 ~= 0 do
    head = head .. "_"
  end
  head64 = base64(head)
  triple = {}
  for i = 0, 999 do
    triple[i] = base64(string.format("%03d", i))
  end
  body_value = '","value":"' .. base64(value) .. '"}'
end

function request()
  n = n + 1
  local key64 = head64 .. triple[math.floor(n / 1000000) % 1000] .. triple[math.floor(n / 1000) % 1000]
    .. triple[n % 1000]
  return wrk.format("POST", "/v3/kv/put", headers, '{"key":"' .. key64 .. body_value)
end
