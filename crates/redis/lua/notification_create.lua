-- notification_create.lua: stores a notification unless its id is live; trims to the retention.
-- KEYS[1]: the user's index   KEYS[2]: the user's hash (see notification_common.lua)
-- ARGV[1]: notification id   ARGV[2]: the notification as created (JSON)
-- ARGV[3]: most notifications kept   ARGV[4]: max age (ms)
-- Returns {created (1|0), state, JSON}: the stored one when the id was live.
local now = now_ms()
local age = tonumber(ARGV[4])
redis.call('HSET', KEYS[2], 'a', ARGV[4])
trim_age(now)
local existing = redis.call('HGET', KEYS[2], 's:' .. ARGV[1])
if existing then
  return {0, existing, redis.call('HGET', KEYS[2], 'j:' .. ARGV[1])}
end
local seq = redis.call('HINCRBY', KEYS[2], 'q', 1)
local state = int(now) .. ' ' .. int(now) .. ' 0 0'
redis.call('ZADD', KEYS[1], seq, ARGV[1])
redis.call('HSET', KEYS[2], 'j:' .. ARGV[1], ARGV[2], 's:' .. ARGV[1], state)
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if excess > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, excess - 1)) do
    drop(id)
  end
end
-- The newest notification is the last to expire: the keys go when it does.
redis.call('PEXPIREAT', KEYS[1], int(now + age))
redis.call('PEXPIREAT', KEYS[2], int(now + age))
return {1, state, ARGV[2]}
