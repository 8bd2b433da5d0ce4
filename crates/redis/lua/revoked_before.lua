-- revoked_before.lua: a user's revoked-before time.
-- KEYS[1]: the user's revoke hash {b = revoked before ms, k = kept until ms}
-- ARGV: none
-- Returns the revoked-before time (ms) while it is kept, else nil.
local now = now_ms()
local f = redis.call('HMGET', KEYS[1], 'b', 'k')
if f[1] and tonumber(f[2]) > now then
  return tonumber(f[1])
end
return nil
