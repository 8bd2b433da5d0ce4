-- cache_get.lua: reads several values of one namespace (get, mget, exists).
-- KEYS[1]: tag versions; KEYS[2]: counters; KEYS[3]: keys by name; KEYS[4]: keys by expiry;
-- KEYS[5..]: the values' keys
-- ARGV[1]: '1' to count hits and misses, '0' not; ARGV[2..]: the cache keys, in KEYS order
-- Returns one value (or false for a miss) per key.
local out = {}
local n = #KEYS - 4
local hits = 0
for i = 1, n do
  local v = cache_read(KEYS[1], KEYS[3], KEYS[4], KEYS[4 + i], ARGV[1 + i])
  if v then
    hits = hits + 1
    out[i] = v
  else
    out[i] = false
  end
end
if ARGV[1] == '1' then
  if hits > 0 then
    redis.call('HINCRBY', KEYS[2], 'hits', hits)
  end
  if n > hits then
    redis.call('HINCRBY', KEYS[2], 'misses', n - hits)
  end
end
return out
