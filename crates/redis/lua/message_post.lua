-- message_post.lua: caches a posted message unless its id is cached already, then applies the
-- bounds.
-- KEYS[1]: the conversation's message index ZSET   KEYS[2]: its message hash
-- ARGV[1]: receipts key prefix   ARGV[2]: message id   ARGV[3]: sender   ARGV[4]: content JSON
-- ARGV[5]: created ms ('' = now)   ARGV[6]: max messages   ARGV[7]: max age ms
-- Returns {duplicate 0|1, message (see message_load)}.
local now = now_ms()
local created = tonumber(ARGV[5]) or now
local added = message_add(KEYS[1], KEYS[2], ARGV[2], ARGV[3], ARGV[4], created)
message_touch(KEYS[1], KEYS[2], ARGV[7])
local m = message_load(KEYS[2], ARGV[2])
message_trim(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[6]))
return {added and 0 or 1, m}
