-- undeny.lua: takes a token id off the denylist.
-- KEYS[1]: the token id's key (string: denied-until ms)
-- ARGV: none
-- Returns 1 when the id was denied, else 0.
local now = now_ms()
local current = tonumber(redis.call('GET', KEYS[1]))
redis.call('DEL', KEYS[1])
if current and current > now then
  return 1
end
return 0
