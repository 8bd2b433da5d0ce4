-- typing_stop.lua: ends a user's typing entry.
-- KEYS[1]: the conversation's typing entries (ZSET user -> expiry ms)
-- KEYS[2]: the conversation's throttle times (hash user -> last start event ms)
-- ARGV[1]: user id
-- Returns 1 when there was an entry (live, or expired and not yet reported by a sweep), else 0.
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
end
return removed
