-- cache_common.lua: helpers prepended to the cache scripts; not an operation by itself.
-- KEYS: none. ARGV: none. Names used below: `tv` the namespace's tag versions (hash tag ->
-- version), `ix` its keys by name (ZSET, scores 0), `ex` its keys by expiry (ZSET key -> ms),
-- `ek` one value's key (hash `v` value, `g:<tag>` tag version when set), `k` the cache key.

-- Deletes one value and its index entries; 1 if the value key existed.
local function cache_drop(ix, ex, ek, k)
  redis.call('ZREM', ix, k)
  redis.call('ZREM', ex, k)
  return redis.call('DEL', ek)
end

-- The live value at `ek`, or nil. A value that recorded an older version of one of its tags
-- than the tag's current version was invalidated: it is deleted here and is a miss.
local function cache_read(tv, ix, ex, ek, k)
  local f = redis.call('HGETALL', ek)
  if #f == 0 then
    -- Expired (Redis dropped the key): tidy the indexes.
    redis.call('ZREM', ix, k)
    redis.call('ZREM', ex, k)
    return nil
  end
  local value = nil
  for i = 1, #f, 2 do
    if f[i] == 'v' then
      value = f[i + 1]
    else
      local current = tonumber(redis.call('HGET', tv, string.sub(f[i], 3)) or '0')
      if current > tonumber(f[i + 1]) then
        cache_drop(ix, ex, ek, k)
        return nil
      end
    end
  end
  return value
end

-- Drops index entries of expired values, at most 100 per call so a script stays short.
local function cache_prune(ix, ex, now)
  local gone = redis.call('ZRANGEBYSCORE', ex, '-inf', int(now), 'LIMIT', 0, 100)
  for _, k in ipairs(gone) do
    redis.call('ZREM', ix, k)
    redis.call('ZREM', ex, k)
  end
end
