-- revoke_before.lua: rejects a user's tokens issued before a time. The time never moves
-- backwards, and is kept until the later of the stored and the given keep-until times.
-- KEYS[1]: the user's revoke hash {b = revoked before ms, k = kept until ms}, expiring at k
-- ARGV[1]: revoke tokens issued before (ms)     ARGV[2]: keep until (ms)
-- Returns the revoked-before time in force afterwards (ms).
local now = now_ms()
local before = tonumber(ARGV[1])
local keep = tonumber(ARGV[2])
local f = redis.call('HMGET', KEYS[1], 'b', 'k')
if f[1] and tonumber(f[2]) > now then
  before = math.max(before, tonumber(f[1]))
  keep = math.max(keep, tonumber(f[2]))
end
if keep > now then
  redis.call('HSET', KEYS[1], 'b', int(before), 'k', int(keep))
  redis.call('PEXPIREAT', KEYS[1], int(keep))
else
  redis.call('DEL', KEYS[1])
end
return before
