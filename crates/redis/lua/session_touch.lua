-- session_touch.lua: marks activity: last_active = now, expiry slid (capped by the absolute one).
-- KEYS[1]: the session's hash
-- ARGV[1]: user index key prefix of the session's shard (prefix .. user id = the index, same slot)
-- ARGV[2]: session id
-- Returns nil when the session is not live, else {refresh, fields}: refresh > 0 is the new
-- counted_until to record in the active-sessions set, 0 when the recorded one still covers the
-- session; fields is the hash as a flat field, value list.
local now = now_ms()
local f = redis.call('HMGET', KEYS[1], 'la', 'it', 'ax', 'cg', 'uid')
if not f[1] then
  return nil
end
local idle = tonumber(f[2])
local absolute_at = tonumber(f[3])
if now >= math.min(tonumber(f[1]) + idle, absolute_at) then
  return nil
end
local expires = math.min(now + idle, absolute_at)
local refresh = 0
if expires > (tonumber(f[4]) or 0) then
  refresh = math.min(expires + math.floor(idle / 8), absolute_at)
  redis.call('HSET', KEYS[1], 'la', now, 'cg', refresh)
else
  redis.call('HSET', KEYS[1], 'la', now)
end
redis.call('PEXPIREAT', KEYS[1], expires)
redis.call('ZADD', ARGV[1] .. f[5], now, ARGV[2])
return {refresh, redis.call('HGETALL', KEYS[1])}
