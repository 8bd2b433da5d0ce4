-- cache_stats.lua: a namespace's counters and live key count.
-- KEYS[1]: counters; KEYS[2]: keys by name; KEYS[3]: keys by expiry
-- ARGV: none
-- Returns {hits, misses, sets, invalidations, keys}.
local now = now_ms()
cache_prune(KEYS[2], KEYS[3], now)
local c = redis.call('HMGET', KEYS[1], 'hits', 'misses', 'sets', 'invalidations')
local keys = redis.call('ZCOUNT', KEYS[3], '(' .. int(now), '+inf')
return { tonumber(c[1] or '0'), tonumber(c[2] or '0'), tonumber(c[3] or '0'), tonumber(c[4] or '0'), keys }
