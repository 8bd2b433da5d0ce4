-- message_drop.lua: forgets a conversation's whole cache, receipts included.
-- KEYS[1]: the conversation's message index ZSET   KEYS[2]: its message hash
-- ARGV[1]: receipts key prefix
-- Returns 1 when something was cached, else 0.
local cached = redis.call('HEXISTS', KEYS[2], 'cached')
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  redis.call('DEL', ARGV[1] .. id)
end
redis.call('DEL', KEYS[1], KEYS[2])
return cached
