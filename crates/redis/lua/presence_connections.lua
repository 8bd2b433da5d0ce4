-- presence_connections.lua: the info of a user's live connections.
-- KEYS[1]: the user's presence hash        KEYS[2]: the user's live entries (ZSET member -> expiry ms)
-- ARGV: none
-- Returns the connection info JSON of each live connection.
local now = now_ms()
local out = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. int(now), '+inf')) do
  local conn = string.match(member, '^c %S+ (%S+)$')
  if conn then
    local info = redis.call('HGET', KEYS[1], 'c:' .. conn)
    if info then
      out[#out + 1] = info
    end
  end
end
return out
