-- cache_delete.lua: removes one value.
-- KEYS[1]: tag versions; KEYS[2]: keys by name; KEYS[3]: keys by expiry; KEYS[4]: the value's key
-- ARGV[1]: the cache key
-- Returns 1 if a live value was removed, else 0.
local live = cache_read(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1])
cache_drop(KEYS[2], KEYS[3], KEYS[4], ARGV[1])
if live then
  return 1
end
return 0
