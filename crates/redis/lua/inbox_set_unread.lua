-- inbox_set_unread.lua: sets one entry's unread count (a repair) and moves the totals by the
-- difference; 0 also forgets the counted message ids, as a read does.
-- KEYS[1]: the user's list hash   KEYS[2]: their totals hash   KEYS[3]: the entry's counted ids
-- ARGV[1]: conversation id   ARGV[2]: the unread count
-- Returns {entry JSON, total unread, total muted unread}, or nil when there is no entry.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then
  return nil
end
local e = cjson.decode(raw)
local unread = tonumber(ARGV[2])
local delta = unread - e.u
if delta ~= 0 then
  redis.call('HINCRBY', KEYS[2], e.mute and 'm' or 'u', delta)
end
e.u = unread
if unread == 0 then
  redis.call('DEL', KEYS[3])
end
local encoded = cjson.encode(e)
redis.call('HSET', KEYS[1], ARGV[1], encoded)
local totals = redis.call('HMGET', KEYS[2], 'u', 'm')
return {encoded, tonumber(totals[1]) or 0, tonumber(totals[2]) or 0}
