-- message_fill.lua: cache-aside fill: caches the messages not cached yet, marks the
-- conversation cached (even with no message), then applies the bounds.
-- KEYS[1]: the conversation's message index ZSET   KEYS[2]: its message hash
-- ARGV[1]: receipts key prefix   ARGV[2]: max messages   ARGV[3]: max age ms
-- ARGV[4..]: per message four values: id, sender, content JSON, created ms ('' = now)
-- Returns how many were added.
local now = now_ms()
local added = 0
for i = 4, #ARGV, 4 do
  local created = tonumber(ARGV[i + 3]) or now
  if message_add(KEYS[1], KEYS[2], ARGV[i], ARGV[i + 1], ARGV[i + 2], created) then
    added = added + 1
  end
end
message_touch(KEYS[1], KEYS[2], ARGV[3])
message_trim(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]))
return added
