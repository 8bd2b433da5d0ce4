-- inbox_import.lua: loads list entries from the app's database: adds each entry the list does not
-- hold yet (its unread count joins the totals) and marks the list loaded; entries present are kept.
-- KEYS[1]: the user's list hash   KEYS[2]: their totals hash
-- ARGV: pairs of (conversation id, entry JSON)
-- Returns {entries added, total unread, total muted unread}.
local added = 0
for i = 1, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    added = added + 1
    local e = cjson.decode(ARGV[i + 1])
    if e.u > 0 then
      redis.call('HINCRBY', KEYS[2], e.mute and 'm' or 'u', e.u)
    end
  end
end
redis.call('HSET', KEYS[2], 'l', 1)
local totals = redis.call('HMGET', KEYS[2], 'u', 'm')
return {added, tonumber(totals[1]) or 0, tonumber(totals[2]) or 0}
