-- conversation_put.lua: creates or replaces a conversation: metadata and the whole member set.
-- KEYS[1]: the conversation's hash {k = kind, n = name, a = avatar url, c = created ms,
--          u = updated ms}     KEYS[2]: its member SET
-- ARGV[1]: kind (direct | group)   ARGV[2]: name ('' = none)   ARGV[3]: avatar url ('' = none)
-- ARGV[4..]: members (already deduplicated and within the limits by the caller)
-- Returns {created ms, updated ms}.
local now = now_ms()
local created = tonumber(redis.call('HGET', KEYS[1], 'c')) or now
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'k', ARGV[1], 'n', ARGV[2], 'a', ARGV[3], 'c', int(created), 'u', int(now))
-- SADD in chunks: Lua's unpack has a stack limit far below 10 000 arguments.
local chunk = {}
for i = 4, #ARGV do
  chunk[#chunk + 1] = ARGV[i]
  if #chunk == 1000 then
    redis.call('SADD', KEYS[2], unpack(chunk))
    chunk = {}
  end
end
if #chunk > 0 then
  redis.call('SADD', KEYS[2], unpack(chunk))
end
return {created, now}
