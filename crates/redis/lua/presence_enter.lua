-- presence_enter.lua: adds or replaces one live entry of a device (a connection, or the device's
-- backend heartbeat) and reports whether the user went online.
-- KEYS[1]: the user's presence hash        KEYS[2]: the user's live entries (ZSET member -> expiry ms)
-- KEYS[3]: the user's device registrations KEYS[4]: the user's device activity (ZSET device -> ms)
-- ARGV[1]: entry member ('c <device> <conn id>' or 'h <device>')   ARGV[2]: device id
-- ARGV[3]: ttl (ms)   ARGV[4]: retention (ms)
-- ARGV[5]: connection id ('' for a heartbeat)   ARGV[6]: connection info JSON ('' for a heartbeat)
-- Returns {went_online (1|0), due_at}: due_at is when the user's last live entry ends, to be
-- recorded in the due set with ZADD LT (never later than a time already recorded there).
local now = now_ms()
local retention = tonumber(ARGV[4])
purge_ended(KEYS[1], KEYS[2], now)
redis.call('ZADD', KEYS[2], int(now + tonumber(ARGV[3])), ARGV[1])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'c:' .. ARGV[5], ARGV[6])
end
redis.call('HSET', KEYS[1], 's:' .. ARGV[2], int(now))
local went_online = 0
if redis.call('HGET', KEYS[1], 'on') ~= '1' then
  redis.call('HSET', KEYS[1], 'on', '1')
  went_online = 1
end
keep_until(now + retention, {KEYS[1], KEYS[2]})
-- A registered device is active now, and kept for the retention from now.
if redis.call('ZADD', KEYS[4], 'XX', 'CH', int(now), ARGV[2]) == 1 then
  keep_until(now + retention, {KEYS[3], KEYS[4]})
end
return {went_online, last_end(KEYS[2])}
