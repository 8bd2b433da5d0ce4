-- inbox_update.lua: changes the pinned / muted / archived flags of one list entry; a mute change
-- moves the entry's unread count between the two totals.
-- KEYS[1]: the user's list hash   KEYS[2]: their totals hash
-- ARGV[1]: conversation id   ARGV[2..4]: pinned, muted, archived: '1', '0' or '' (unchanged)
-- Returns the entry JSON, or nil when the user has no entry for the conversation.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then
  return nil
end
local e = cjson.decode(raw)
local function flag(v, old)
  if v == '' then
    return old
  end
  return v == '1'
end
local was_muted = e.mute
e.pin = flag(ARGV[2], e.pin)
e.mute = flag(ARGV[3], e.mute)
e.arch = flag(ARGV[4], e.arch)
if was_muted ~= e.mute and e.u > 0 then
  redis.call('HINCRBY', KEYS[2], was_muted and 'm' or 'u', -e.u)
  redis.call('HINCRBY', KEYS[2], e.mute and 'm' or 'u', e.u)
end
local encoded = cjson.encode(e)
redis.call('HSET', KEYS[1], ARGV[1], encoded)
return encoded
