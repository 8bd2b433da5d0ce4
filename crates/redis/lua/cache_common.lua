-- cache_common.lua: helpers prepended to the cache scripts; not an operation by itself.
-- KEYS: none. ARGV: none. Names used below: `tv` the namespace's tag versions (hash tag ->
-- version), `ix` its keys by name (ZSET, scores 0), `ex` its keys by expiry (ZSET key -> ms),
-- `ek` one value's key (hash `v` value, `f` fresh-until ms when it has a stale grace,
-- `g:<tag>` tag version when set), `k` the cache key, `lk` a key's lease (hash `t` token,
-- `x` expiry ms, `g:<tag>` tag version when granted), `lx` / `le` the namespace's leased keys
-- by name (scores 0) / by lease expiry.

-- Deletes one value and its index entries; 1 if the value key existed.
local function cache_drop(ix, ex, ek, k)
  redis.call('ZREM', ix, k)
  redis.call('ZREM', ex, k)
  return redis.call('DEL', ek)
end

-- The value stored at `ek` and whether it is fresh (else stale, within its grace), or nil. A
-- value that recorded an older version of one of its tags than the tag's current version was
-- invalidated: it is deleted here and is a miss.
local function cache_lookup(tv, ix, ex, ek, k)
  local f = redis.call('HGETALL', ek)
  if #f == 0 then
    -- Expired (Redis dropped the key): tidy the indexes.
    redis.call('ZREM', ix, k)
    redis.call('ZREM', ex, k)
    return nil, false
  end
  local value, fresh_until = nil, nil
  for i = 1, #f, 2 do
    if f[i] == 'v' then
      value = f[i + 1]
    elseif f[i] == 'f' then
      fresh_until = tonumber(f[i + 1])
    else
      local current = tonumber(redis.call('HGET', tv, string.sub(f[i], 3)) or '0')
      if current > tonumber(f[i + 1]) then
        cache_drop(ix, ex, ek, k)
        return nil, false
      end
    end
  end
  -- Without a grace the key's own expiry is the TTL: the clock is read only with one.
  return value, fresh_until == nil or now_ms() < fresh_until
end

-- The fresh value at `ek`, or nil (stale values are misses here).
local function cache_read(tv, ix, ex, ek, k)
  local value, fresh = cache_lookup(tv, ix, ex, ek, k)
  if fresh then
    return value
  end
  return nil
end

-- Stores one value fresh for `ttl` ms then stale for `stale` ms; `tags` is a flat list of
-- tag, version pairs to record.
local function cache_store(ix, ex, ek, k, v, ttl, stale, tags, now)
  local fields = { 'v', v }
  if stale > 0 then
    fields[#fields + 1] = 'f'
    fields[#fields + 1] = int(now + ttl)
  end
  for i = 1, #tags, 2 do
    fields[#fields + 1] = 'g:' .. tags[i]
    fields[#fields + 1] = tags[i + 1]
  end
  redis.call('DEL', ek)
  redis.call('HSET', ek, unpack(fields))
  redis.call('PEXPIRE', ek, int(ttl + stale))
  redis.call('ZADD', ix, 0, k)
  redis.call('ZADD', ex, int(now + ttl + stale), k)
end

-- Drops one key's lease and its index entries.
local function cache_drop_lease(lx, le, lk, k)
  redis.call('ZREM', lx, k)
  redis.call('ZREM', le, k)
  redis.call('DEL', lk)
end

-- Whether two strings are equal, in time that depends only on their lengths (lease tokens).
local function same_secret(a, b)
  if #a ~= #b then
    return false
  end
  local differ = 0
  for i = 1, #a do
    differ = bit.bor(differ, bit.bxor(string.byte(a, i), string.byte(b, i)))
  end
  return differ == 0
end

-- Drops index entries of expired values (or leases: `lx`, `le`), at most 100 per call so a
-- script stays short.
local function cache_prune(ix, ex, now)
  local gone = redis.call('ZRANGEBYSCORE', ex, '-inf', int(now), 'LIMIT', 0, 100)
  for _, k in ipairs(gone) do
    redis.call('ZREM', ix, k)
    redis.call('ZREM', ex, k)
  end
end
