-- session_delete.lua: deletes one session and its entry in the user's index.
-- KEYS[1]: the session's hash
-- ARGV[1]: user index key prefix of the session's shard (prefix .. user id = the index, same slot)
-- ARGV[2]: session id
-- Returns 1 when a live session was deleted, else 0.
local now = now_ms()
local f = redis.call('HMGET', KEYS[1], 'la', 'it', 'ax', 'uid')
if not f[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', ARGV[1] .. f[4], ARGV[2])
if now < math.min(tonumber(f[1]) + tonumber(f[2]), tonumber(f[3])) then
  return 1
end
return 0
