-- cache_set.lua: stores several values of one namespace (set, mset), each recording the current
-- versions of its tags in the same atomic step.
-- KEYS[1]: tag versions; KEYS[2]: counters; KEYS[3]: keys by name; KEYS[4]: keys by expiry;
-- KEYS[5..]: the values' keys
-- ARGV: per value, in KEYS order: cache key, value, ttl ms, stale grace ms, tag count, then per
--       tag the tag and the version to record ('' = the tag's current version)
-- Returns how many values were stored.
local now = now_ms()
cache_prune(KEYS[3], KEYS[4], now)
local a = 1
for i = 5, #KEYS do
  local k, v, ttl, stale, ntags = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  a = a + 5
  local tags = {}
  for j = 0, ntags - 1 do
    local tag, given = ARGV[a + 2 * j], ARGV[a + 2 * j + 1]
    tags[#tags + 1] = tag
    if given == '' then
      tags[#tags + 1] = redis.call('HGET', KEYS[1], tag) or '0'
    else
      tags[#tags + 1] = given
    end
  end
  a = a + 2 * ntags
  cache_store(KEYS[3], KEYS[4], KEYS[i], k, v, ttl, stale, tags, now)
end
redis.call('HINCRBY', KEYS[2], 'sets', #KEYS - 4)
return #KEYS - 4
