-- message_delete.lua: turns a cached message into a tombstone (content null, deleted).
-- KEYS[1]: the conversation's message index ZSET   KEYS[2]: its message hash
-- ARGV[1]: message id
-- Returns 1 when it changed, 0 when it is not cached or already deleted.
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[2], 's:' .. id) == 0 or redis.call('HGET', KEYS[2], 'd:' .. id) == '1' then
  return 0
end
redis.call('HSET', KEYS[2], 'c:' .. id, 'null', 'd:' .. id, '1')
return 1
