-- typing_settle.lua: removes a conversation's expired typing entries, for one sweep. Each entry
-- is removed here or by typing_stop.lua, never both, so each stop is reported once.
-- KEYS[1]: the conversation's typing entries (ZSET user -> expiry ms)
-- KEYS[2]: the conversation's throttle times (hash user -> last start event ms)
-- ARGV: none
-- Returns {next, expired}: next is the earliest remaining expiry (-1 when none); expired lists
-- the users whose entries ended.
local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', int(now))
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(now))
  for _, user in ipairs(expired) do
    redis.call('HDEL', KEYS[2], user)
  end
end
local earliest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if not earliest[2] then
  redis.call('DEL', KEYS[2])
  return {-1, expired}
end
return {tonumber(earliest[2]), expired}
