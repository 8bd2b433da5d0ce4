-- cache_tag_versions.lua: the current versions of some tags (read before computing a value).
-- KEYS[1]: the namespace's tag versions
-- ARGV: the tags
-- Returns one version per tag (0 for a tag never invalidated).
local v = redis.call('HMGET', KEYS[1], unpack(ARGV))
local out = {}
for i = 1, #ARGV do
  out[i] = tonumber(v[i] or '0')
end
return out
