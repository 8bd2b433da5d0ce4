-- inbox_remove.lua: removes one list entry; its unread count leaves the totals.
-- KEYS[1]: the user's list hash   KEYS[2]: their totals hash   KEYS[3]: the entry's counted ids
-- ARGV[1]: conversation id
-- Returns 1 when removed, 0 when there was no entry.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then
  return 0
end
local e = cjson.decode(raw)
if e.u > 0 then
  redis.call('HINCRBY', KEYS[2], e.mute and 'm' or 'u', -e.u)
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[3])
return 1
