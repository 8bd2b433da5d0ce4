-- presence_status.lua: stores a user's status setting and returns the previous one.
-- KEYS[1]: the user's presence hash        KEYS[2]: the user's live entries (ZSET member -> expiry ms)
-- ARGV[1]: status   ARGV[2]: '1' when a text follows, else '0'   ARGV[3]: text
-- ARGV[4]: invisible '1' | '0'   ARGV[5]: retention (ms)
-- Returns {{status, has_text, text, invisible} before, fields, live, now, off} (as in
-- presence_get.lua).
local now = now_ms()
local before = redis.call('HMGET', KEYS[1], 'st', 'tx', 'inv')
local previous = {before[1] or '', before[2] and '1' or '0', before[2] or '', before[3] or '0'}
redis.call('HSET', KEYS[1], 'st', ARGV[1], 'inv', ARGV[4])
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'tx', ARGV[3])
else
  redis.call('HDEL', KEYS[1], 'tx')
end
local ttl = redis.call('PTTL', KEYS[1])
local keep = now + tonumber(ARGV[5])
if ttl < 0 or now + ttl < keep then
  redis.call('PEXPIREAT', KEYS[1], int(keep))
end
local snap = snapshot(KEYS[1], KEYS[2], now)
return {previous, snap[1], snap[2], snap[3], snap[4]}
