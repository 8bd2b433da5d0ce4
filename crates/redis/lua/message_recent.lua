-- message_recent.lua: a page of cached messages, newest first.
-- KEYS[1]: the conversation's message index ZSET   KEYS[2]: its message hash
-- ARGV[1]: receipts key prefix   ARGV[2]: limit   ARGV[3]: before this message id ('' = newest)
-- Returns {cached 0|1, {message, ...}} (see message_load).
if redis.call('HEXISTS', KEYS[2], 'cached') == 0 then
  return {0, {}}
end
local start = 0
if ARGV[3] ~= '' then
  local rank = redis.call('ZREVRANK', KEYS[1], ARGV[3])
  if not rank then
    return {1, {}}
  end
  start = rank + 1
end
local out = {}
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], start, start + tonumber(ARGV[2]) - 1)) do
  local m = message_load(KEYS[2], id)
  if m then
    out[#out + 1] = m
  end
end
return {1, out}
