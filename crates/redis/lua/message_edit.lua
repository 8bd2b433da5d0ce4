-- message_edit.lua: replaces a cached, not deleted message's content and sets its edit time.
-- KEYS[1]: the conversation's message index ZSET   KEYS[2]: its message hash
-- ARGV[1]: message id   ARGV[2]: content JSON
-- Returns the message (see message_load), or nil when it is not cached or deleted.
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[2], 's:' .. id) == 0 or redis.call('HGET', KEYS[2], 'd:' .. id) == '1' then
  return nil
end
redis.call('HSET', KEYS[2], 'c:' .. id, ARGV[2], 'e:' .. id, int(now_ms()))
return message_load(KEYS[2], id)
