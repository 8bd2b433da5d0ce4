-- ratelimit_check.lua: decides a (multi-key) rate-limit check atomically, all or nothing.
-- Mirrors core/src/ratelimit/algorithms.rs operation for operation (same EPS, same helpers,
-- same order of float operations) so both engines decide identically: change both together.
-- KEYS[i]: state of the i-th rate-limit key. gcra: string, the theoretical arrival time
--          ('%.17g', exact); sliding_window: hash {i = window index, c = its count, p = the
--          previous window's count}; sliding_log: ZSET of request times (score = ms).
--          State of another algorithm (another Redis type) counts as empty.
-- ARGV[6i-5 .. 6i], for key i: algorithm (gcra | sliding_window | sliding_log), limit,
--          window_ms, capacity (burst for gcra, else limit), cost, consume (1 = consume when
--          every key allows it, 0 = decide only)
-- Returns 5 integers per key: allowed (1 | 0), limit, remaining, reset_after_ms, retry_after_ms.
-- Pass 1 evaluates every key; pass 2 consumes only if every key allowed; otherwise nothing is
-- written and each key's own current decision is returned.

local EPS = 1e-6

local function ceil_ms(x)
  if x <= 0 then
    return 0
  end
  return math.max(math.ceil(x - EPS), 0)
end

local function floor_count(x)
  if x <= 0 then
    return 0
  end
  return math.floor(x + EPS)
end

local TYPES = {gcra = 'string', sliding_window = 'hash', sliding_log = 'zset'}

-- Each algorithm returns (current decision, decision after consuming or nil, writer or nil).

local function gcra(key, same, capacity, limit, window, cost, now)
  local interval = window / limit
  local tolerance = capacity * interval
  -- Work relative to now: at epoch-ms magnitudes a double has no sub-microsecond precision.
  local ahead = 0
  if same then
    ahead = math.max((tonumber(redis.call('GET', key)) or now) - now, 0)
  end
  local new_ahead = ahead + cost * interval
  local allow_in = new_ahead - tolerance
  local allowed = allow_in <= EPS
  local retry_after = 0
  if not allowed then
    retry_after = ceil_ms(allow_in)
  end
  local current = {allowed and 1 or 0, capacity, floor_count((tolerance - ahead) / interval), ceil_ms(ahead), retry_after}
  if not allowed then
    return current
  end
  local after = {1, capacity, floor_count((tolerance - new_ahead) / interval), ceil_ms(new_ahead), 0}
  local new_tat = now + new_ahead
  local function write()
    redis.call('SET', key, string.format('%.17g', new_tat), 'PXAT', int(math.ceil(new_tat)))
  end
  return current, after, write
end

local function sliding_window(key, same, limit, window, cost, now)
  -- Exact integer division: now and window are integers far below 2^53.
  local index = math.floor(now / window)
  local curr, prev = 0, 0
  if same then
    local f = redis.call('HMGET', key, 'i', 'c', 'p')
    local i = tonumber(f[1])
    if i == index then
      curr, prev = tonumber(f[2]), tonumber(f[3])
    elseif i == index - 1 then
      curr, prev = 0, tonumber(f[2])
    end
  end
  local start = index * window
  local elapsed = now - start
  local w = window
  local estimate = prev * (w - elapsed) / w + curr
  local allowed = estimate + cost <= limit + EPS
  local reset_after = 0
  if curr > 0 then
    reset_after = start + 2 * window - now
  elseif prev > 0 then
    reset_after = start + window - now
  end
  local retry_after = 0
  if not allowed then
    if curr + cost <= limit + EPS then
      -- Fits in this window once enough of the previous one has slid out.
      local needed = w - (limit - curr - cost) * w / prev
      retry_after = ceil_ms(start + needed - now)
    else
      -- Only in the next window, once enough of this one has slid out.
      local needed = w - (limit - cost) * w / curr
      retry_after = ceil_ms((start + window) + needed - now)
    end
  end
  local current = {allowed and 1 or 0, limit, floor_count(limit - estimate), reset_after, retry_after}
  if not allowed then
    return current
  end
  local after = {1, limit, floor_count(limit - estimate - cost), start + 2 * window - now, 0}
  local function write()
    if not same then
      redis.call('DEL', key)
    end
    redis.call('HSET', key, 'i', int(index), 'c', int(curr + cost), 'p', int(prev))
    redis.call('PEXPIREAT', key, int(start + 2 * window))
  end
  return current, after, write
end

local function sliding_log(key, same, limit, window, cost, now)
  -- Live entries are those with t + window > now.
  local low = '(' .. int(now - window)
  local n = 0
  if same then
    n = redis.call('ZCOUNT', key, low, '+inf')
  end
  local allowed = n + cost <= limit
  local retry_after = 0
  if not allowed then
    -- The (n + cost - limit)-th oldest entry must leave the window first.
    local k = n + cost - limit
    retry_after = window
    if same then
      local e = redis.call('ZRANGEBYSCORE', key, low, '+inf', 'WITHSCORES', 'LIMIT', k - 1, 1)
      if e[2] then
        retry_after = tonumber(e[2]) + window - now
      end
    end
  end
  local reset_after = 0
  if n > 0 then
    local e = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    reset_after = tonumber(e[2]) + window - now
  end
  local current = {allowed and 1 or 0, limit, math.max(limit - n, 0), reset_after, retry_after}
  if not allowed then
    return current
  end
  local after = {1, limit, limit - n - cost, window, 0}
  local function write()
    if not same then
      redis.call('DEL', key)
    end
    redis.call('ZREMRANGEBYSCORE', key, '-inf', int(now - window))
    -- Members must be unique: now:seq, skipping any already taken.
    local seq = redis.call('ZCOUNT', key, int(now), int(now))
    local batch = {}
    for _ = 1, cost do
      local member
      repeat
        seq = seq + 1
        member = int(now) .. ':' .. int(seq)
      until not redis.call('ZSCORE', key, member)
      batch[#batch + 1] = int(now)
      batch[#batch + 1] = member
      if #batch >= 200 then
        redis.call('ZADD', key, unpack(batch))
        batch = {}
      end
    end
    if #batch > 0 then
      redis.call('ZADD', key, unpack(batch))
    end
    redis.call('PEXPIREAT', key, int(now + window))
  end
  return current, after, write
end

local now = now_ms()
local current, after, writes = {}, {}, {}
local all_allowed = true
for i = 1, #KEYS do
  local a = (i - 1) * 6
  local algorithm = ARGV[a + 1]
  local limit = tonumber(ARGV[a + 2])
  local window = tonumber(ARGV[a + 3])
  local capacity = tonumber(ARGV[a + 4])
  local cost = tonumber(ARGV[a + 5])
  local want = TYPES[algorithm]
  if not want then
    return redis.error_reply('ERR unknown rate-limit algorithm ' .. tostring(algorithm))
  end
  local same = redis.call('TYPE', KEYS[i])['ok'] == want
  local cur, aft, write
  if algorithm == 'gcra' then
    cur, aft, write = gcra(KEYS[i], same, capacity, limit, window, cost, now)
  elseif algorithm == 'sliding_window' then
    cur, aft, write = sliding_window(KEYS[i], same, limit, window, cost, now)
  else
    cur, aft, write = sliding_log(KEYS[i], same, limit, window, cost, now)
  end
  current[i] = cur
  if aft then
    after[i] = aft
    if ARGV[a + 6] == '1' then
      writes[i] = write
    end
  else
    all_allowed = false
  end
end

local out = {}
for i = 1, #KEYS do
  local decision = current[i]
  if all_allowed and writes[i] then
    writes[i]()
    decision = after[i]
  end
  for j = 1, 5 do
    out[#out + 1] = decision[j]
  end
end
return out
