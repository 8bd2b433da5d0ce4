-- session_get.lua: the live session's fields.
-- KEYS[1]: the session's hash
-- ARGV: none
-- Returns the hash as a flat field, value list, or nil when the session is not live.
local now = now_ms()
local expires = session_expiry(KEYS[1])
if not expires or now >= expires then
  return nil
end
return redis.call('HGETALL', KEYS[1])
