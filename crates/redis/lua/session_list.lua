-- session_list.lua: the user's live sessions, most recently active first. Index entries of
-- ended sessions are dropped on the way.
-- KEYS[1]: the user's index (ZSET sid -> last_active_ms)
-- ARGV[1]: session key prefix of the user's shard (prefix .. sid = a session key, same slot)
-- Returns {{sid, fields}, ...} with each hash as a flat field, value list.
local now = now_ms()
local out = {}
for _, sid in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. sid
  local expires = session_expiry(key)
  if expires and now < expires then
    out[#out + 1] = {sid, redis.call('HGETALL', key)}
  else
    redis.call('ZREM', KEYS[1], sid)
    if expires then
      redis.call('DEL', key)
    end
  end
end
return out
