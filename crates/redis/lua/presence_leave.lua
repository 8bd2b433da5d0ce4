-- presence_leave.lua: ends one live entry: a connection, or a device's heartbeat.
-- KEYS[1]: the user's presence hash        KEYS[2]: the user's live entries (ZSET member -> expiry ms)
-- ARGV[1]: the entry's member ('c <device> <conn id>' or 'h <device>')
-- ARGV[2]: conn id ('' for a heartbeat)    ARGV[3]: device id
-- Returns {maybe_offline (1|0), now}: 1 when this was the user's last live entry and the user is
-- reported online; the caller then records `now + grace` in the due set (ZADD LT).
local now = now_ms()
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score then
  return {0, now}
end
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[2] ~= '' then
  redis.call('HDEL', KEYS[1], 'c:' .. ARGV[2])
end
if tonumber(score) > now then
  redis.call('HSET', KEYS[1], 's:' .. ARGV[3], int(now))
end
if purge_ended(KEYS[1], KEYS[2], now) > 0 or redis.call('HGET', KEYS[1], 'on') ~= '1' then
  return {0, now}
end
local off = math.max(tonumber(redis.call('HGET', KEYS[1], 'off')) or 0, now)
redis.call('HSET', KEYS[1], 'off', int(off))
return {1, now}
