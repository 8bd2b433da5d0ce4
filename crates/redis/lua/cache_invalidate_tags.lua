-- cache_invalidate_tags.lua: increments the version of every tag given, in one step; every value
-- that recorded an older version is a miss from now on.
-- KEYS[1]: tag versions; KEYS[2]: counters
-- ARGV: the tags
for _, tag in ipairs(ARGV) do
  redis.call('HINCRBY', KEYS[1], tag, 1)
end
redis.call('HINCRBY', KEYS[2], 'invalidations', 1)
return 1
