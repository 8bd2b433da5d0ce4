-- presence_refresh.lua: extends the user's still-live connections of one refresh batch.
-- KEYS[1]: the user's presence hash        KEYS[2]: the user's live entries (ZSET member -> expiry ms)
-- ARGV[1]: ttl (ms)   ARGV[2]: retention (ms)   ARGV[3..]: connection members 'c <device> <conn id>'
-- Returns the positions (1-based, among ARGV[3..]) of the connections that are not live any
-- more: they are not revived (the sweep may already have reported the user offline).
local now = now_ms()
local expires = int(now + tonumber(ARGV[1]))
local missing = {}
for i = 3, #ARGV do
  local score = redis.call('ZSCORE', KEYS[2], ARGV[i])
  if score and tonumber(score) > now then
    redis.call('ZADD', KEYS[2], expires, ARGV[i])
    redis.call('HSET', KEYS[1], 's:' .. string.match(ARGV[i], '^c (%S+) '), int(now))
  else
    missing[#missing + 1] = i - 2
  end
end
if #missing < #ARGV - 2 then
  keep_until(now + tonumber(ARGV[2]), {KEYS[1], KEYS[2]})
end
return missing
