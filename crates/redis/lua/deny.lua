-- deny.lua: denies a token id until a time; denying again keeps the later time; a time that
-- is not in the future stores nothing.
-- KEYS[1]: the token id's key (string: denied-until ms, expiring at that time)
-- ARGV[1]: denied until (ms)
-- Returns 1 when stored, 0 when not (in the past, or a later time is already in force).
local now = now_ms()
local until_ms = tonumber(ARGV[1])
if until_ms <= now then
  return 0
end
local current = tonumber(redis.call('GET', KEYS[1]))
if current and current >= until_ms then
  return 0
end
redis.call('SET', KEYS[1], int(until_ms), 'PXAT', int(until_ms))
return 1
