-- session_count.lua: the number of sessions counted as active, after trimming ended entries.
-- KEYS[1]: the active-sessions set (ZSET sid -> counted_until ms, at or after the session's end)
-- ARGV: none
-- Returns the count.
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(now))
return redis.call('ZCARD', KEYS[1])
