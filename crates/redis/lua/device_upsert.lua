-- device_upsert.lua: registers a device or replaces its registration, keeping registered_at.
-- KEYS[1]: the user's device registrations (hash j:<device> JSON, r:<device> registered ms)
-- KEYS[2]: the user's device activity (ZSET device -> last active ms)
-- ARGV[1]: device id   ARGV[2]: registration JSON   ARGV[3]: retention (ms)
-- Returns {registered_at, now}.
local now = now_ms()
local retention = tonumber(ARGV[3])
forget_inactive(KEYS[1], KEYS[2], now - retention)
local registered = tonumber(redis.call('HGET', KEYS[1], 'r:' .. ARGV[1]))
if not registered then
  registered = now
  redis.call('HSET', KEYS[1], 'r:' .. ARGV[1], int(now))
end
redis.call('HSET', KEYS[1], 'j:' .. ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], int(now), ARGV[1])
keep_until(now + retention, {KEYS[1], KEYS[2]})
return {registered, now}
