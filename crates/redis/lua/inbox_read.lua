-- inbox_read.lua: the user read up to a message: the entry's unread count becomes 0.
-- KEYS[1]: the user's list hash   KEYS[2]: their totals hash   KEYS[3]: the entry's counted ids
-- ARGV[1]: conversation id
-- Returns {unread cleared, total unread, total muted unread}, or nil when there is no entry.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then
  return nil
end
local e = cjson.decode(raw)
local cleared = e.u
if cleared > 0 then
  redis.call('HINCRBY', KEYS[2], e.mute and 'm' or 'u', -cleared)
  e.u = 0
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(e))
end
redis.call('DEL', KEYS[3])
local totals = redis.call('HMGET', KEYS[2], 'u', 'm')
return {cleared, tonumber(totals[1]) or 0, tonumber(totals[2]) or 0}
