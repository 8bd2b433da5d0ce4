-- presence_settle.lua: decides, for one user claimed by a sweep, whether going offline is due.
-- The `on` flag flips from 1 to 0 here and only here, so each offline transition is reported once.
-- KEYS[1]: the user's presence hash        KEYS[2]: the user's live entries (ZSET member -> expiry ms)
-- ARGV[1]: grace period (ms)
-- Returns {code, at}: 0 = not reported online (drop from the index); 1 = check again at `at`;
-- 2 = went offline now.
local now = now_ms()
if redis.call('HGET', KEYS[1], 'on') ~= '1' then
  return {0, 0}
end
if purge_ended(KEYS[1], KEYS[2], now) > 0 then
  return {1, last_end(KEYS[2])}
end
local settle_at = (tonumber(redis.call('HGET', KEYS[1], 'off')) or 0) + tonumber(ARGV[1])
if now < settle_at then
  return {1, settle_at}
end
redis.call('HSET', KEYS[1], 'on', '0')
return {2, 0}
