-- presence_common.lua: helpers of the presence scripts, prepended after common.lua; not an
-- operation by itself.
-- KEYS: none. ARGV: none.

-- Drops the entries of `live` (ZSET member -> expiry ms) that ended at or before `now`, and the
-- connection info (`c:<conn>` in hash `state`) of those that were connections; records in the
-- hash's `off` field when the last of them ended. Returns the number of entries left.
local function purge_ended(state, live, now)
  local ended = redis.call('ZRANGEBYSCORE', live, '-inf', int(now), 'WITHSCORES')
  if #ended > 0 then
    local off = tonumber(redis.call('HGET', state, 'off')) or 0
    for i = 1, #ended, 2 do
      local conn = string.match(ended[i], '^c %S+ (%S+)$')
      if conn then
        redis.call('HDEL', state, 'c:' .. conn)
      end
      off = math.max(off, tonumber(ended[i + 1]))
    end
    redis.call('ZREMRANGEBYSCORE', live, '-inf', int(now))
    redis.call('HSET', state, 'off', int(off))
  end
  return redis.call('ZCARD', live)
end

-- When the last entry of `live` ends (ms), or nil when there is none.
local function last_end(live)
  local top = redis.call('ZRANGE', live, -1, -1, 'WITHSCORES')
  if top[2] then
    return tonumber(top[2])
  end
  return nil
end

-- Sets every key of the list `keys` to expire at `at` (ms); missing keys are left alone.
local function keep_until(at, keys)
  for _, key in ipairs(keys) do
    redis.call('PEXPIREAT', key, int(at))
  end
end

-- The user's presence as {fields, live, now, off}: the state hash without connection info (flat
-- field, value list), the members of the entries still live at `now`, `now`, and when the last
-- entry ended (ms; entries past their expiry but not purged yet ended at their expiry).
local function snapshot(state, live, now)
  local all = redis.call('HGETALL', state)
  local fields = {}
  local off = 0
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) ~= 'c:' then
      fields[#fields + 1] = all[i]
      fields[#fields + 1] = all[i + 1]
    end
    if all[i] == 'off' then
      off = tonumber(all[i + 1]) or 0
    end
  end
  local ended = redis.call('ZREVRANGEBYSCORE', live, int(now), '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if ended[2] then
    off = math.max(off, tonumber(ended[2]))
  end
  return {fields, redis.call('ZRANGEBYSCORE', live, '(' .. int(now), '+inf'), int(now), int(off)}
end

-- Forgets the devices of registration hash `devices` whose activity (ZSET `activity`) is at or
-- before `before` (ms).
local function forget_inactive(devices, activity, before)
  local old = redis.call('ZRANGEBYSCORE', activity, '-inf', int(before))
  for _, device in ipairs(old) do
    redis.call('HDEL', devices, 'j:' .. device, 'r:' .. device)
  end
  if #old > 0 then
    redis.call('ZREMRANGEBYSCORE', activity, '-inf', int(before))
  end
end
