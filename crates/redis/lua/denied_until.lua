-- denied_until.lua: until when a token id is denied.
-- KEYS[1]: the token id's key (string: denied-until ms)
-- ARGV: none
-- Returns the denied-until time (ms) while it is in the future, else nil.
local now = now_ms()
local current = tonumber(redis.call('GET', KEYS[1]))
if current and current > now then
  return current
end
return nil
