-- device_remove.lua: forgets a device's registration.
-- KEYS[1]: the user's device registrations  KEYS[2]: the user's device activity (ZSET device -> ms)
-- ARGV[1]: device id   ARGV[2]: retention (ms)
-- Returns 1 when the device was registered (and active within the retention), else 0.
local now = now_ms()
forget_inactive(KEYS[1], KEYS[2], now - tonumber(ARGV[2]))
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], 'j:' .. ARGV[1], 'r:' .. ARGV[1])
return removed
