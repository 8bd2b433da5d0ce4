-- session_delete_user.lua: deletes all of a user's live sessions except an optional one
-- (logout everywhere / on other devices). Index entries of ended sessions are dropped too.
-- KEYS[1]: the user's index (ZSET sid -> last_active_ms)
-- ARGV[1]: session key prefix of the user's shard (prefix .. sid = a session key, same slot)
-- ARGV[2]: the session id to keep, or '' for none
-- Returns the deleted live session ids, most recently active first.
local now = now_ms()
local deleted = {}
for _, sid in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. sid
  local expires = session_expiry(key)
  local live = expires and now < expires
  if not (live and sid == ARGV[2]) then
    redis.call('ZREM', KEYS[1], sid)
    if expires then
      redis.call('DEL', key)
    end
    if live then
      deleted[#deleted + 1] = sid
    end
  end
end
return deleted
