-- job_common.lua: helpers prepended to the job scripts (after common.lua); not an operation by
-- itself. KEYS: none. ARGV[1] of every queue script: the queue prefix; the scripts' own
-- arguments start at ARGV[2]. Every key of one queue is built here, after that prefix, exactly
-- as keys.rs documents: `j:<id>` a job's hash, `w` `d` `a` `c` `x` `u` `m` the queue's sets,
-- `g` its ended claims. On a Cluster the prefix is `<p>{jobs:<queue>}:`: all share the
-- queue's slot, so a queue script touches one slot. On one server (standalone, Sentinel)
-- ARGV[1] is `<p>{jobs}:q:<queue>:`, a newline, and `<p>{jobs}:`, the prefix of job hashes
-- there: ids are global by their key, so no id claims are kept (ONE).
-- (The schedule scripts get the global prefix `<p>{jobs}:` instead.)
--
-- A job's hash: q queue, t type, p payload, pr priority, s state (wire name), a attempts,
-- ma max attempts, b backoff (`Backoff::encode`), l lease ms, u unique key, c created ms,
-- r run-at ms, st started ms, f finished ms, le lease end ms, k lease token, pg progress,
-- rs result, e errors (JSON array of the newest 10 `{a: attempt, m: message, t: "<ms>"}`),
-- sq the enqueue/requeue sequence number (orders delayed jobs due at the same ms), n the number
-- of the id claim it was created under on a Cluster (see keys.rs, "Job ids").
-- Queue parts: w waiting, d delayed, a active, c completed, x dead (ZSETs), u unique keys,
-- m meta (hash), g ended claims (ZSET `<claim number>:<id>` -> ms it ended).

-- JP: the queue's prefix; HP: the prefix of job hashes; ONE: on one server.
local JP, HP, ONE = ARGV[1], ARGV[1], false
do
  local nl = string.find(ARGV[1], '\n', 1, true)
  if nl then
    JP, HP, ONE = string.sub(ARGV[1], 1, nl - 1), string.sub(ARGV[1], nl + 1), true
  end
end
local MAX_PRIORITY = 1000
-- Waiting score = (MAX_PRIORITY - priority) * 2^41 + seq: below 2^52, so exact in a double;
-- strict between levels, FIFO within one.
local SEQ_SPAN = 2199023255552
-- Completed and dead scores = finish ms * 1024, bumped past the newest entry on a tie, so
-- newest-first stays insertion order within a millisecond; exact in a double until year 2248.
local FIN_SCALE = 1024
local MAX_ERRORS = 10
-- Most jobs one call settles (due delayed + expired leases) or trims, so a script stays short.
local BUDGET = 1000
-- How long an ended claim is remembered (ms): far longer than one enqueue call takes (its
-- steps are bounded by the command timeout), since an enqueue that read a claim and reached the
-- queue later than this after the claim ended could still create under it. Costs one entry per
-- deleted job for that long.
local GONE_MS = 600000

local function job_key(id)
  return HP .. 'j:' .. id
end

-- A key of `queue`, or of this script's queue when nil (on a Cluster always this script's
-- queue: the prefix already holds it; on one server a script may touch several queues, as an
-- enqueue spanning queues does).
local function qkey(queue, part)
  if ONE and queue then
    return HP .. 'q:' .. queue .. ':' .. part
  end
  return JP .. part
end

-- Ids (with their claim numbers) this script deleted, flat: the caller frees their claims
-- (on a Cluster; on one server, with no claims, it stays empty).
local FREED = {}

-- Ends claim `n` of job `id` in this queue (on a Cluster; one server keeps no claims): an
-- enqueue that still holds it is told to claim again instead of creating under it, the caller
-- frees it, and old ended claims are forgotten.
local function end_claim(id, n, now)
  if ONE then
    return
  end
  FREED[#FREED + 1] = id
  FREED[#FREED + 1] = n
  local gk = JP .. 'g'
  redis.call('ZADD', gk, int(now), n .. ':' .. id)
  redis.call('ZREMRANGEBYSCORE', gk, '-inf', '(' .. int(now - GONE_MS))
end

-- Whether claim `n` of `id` ended here.
local function claim_ended(id, n)
  return redis.call('ZSCORE', JP .. 'g', n .. ':' .. id) ~= false
end

-- The record fields, in the order the Rust side parses them (after the id).
local FIELDS = { 'q', 't', 'p', 'pr', 's', 'a', 'ma', 'b', 'l', 'u', 'c', 'r', 'st', 'f', 'le', 'pg', 'rs', 'e' }
-- Field name -> index in a record (the id is at 1).
local R = {}
for i, name in ipairs(FIELDS) do
  R[name] = i + 1
end

-- {id, fields...} of a job, or nil when there is no such job.
local function record(id)
  local f = redis.call('HMGET', job_key(id), unpack(FIELDS))
  if not f[1] then
    return nil
  end
  table.insert(f, 1, id)
  return f
end

-- The first of `n` fresh sequence numbers of `queue`.
local function next_seq(queue, n)
  return redis.call('HINCRBY', qkey(queue, 'm'), 'seq', n) - n + 1
end

local function push_waiting(queue, id, priority, seq)
  redis.call('ZADD', qkey(queue, 'w'), int((MAX_PRIORITY - priority) * SEQ_SPAN + seq), id)
end

-- Frees `key` of `queue` if job `id` holds it.
local function release_unique(queue, key, id)
  if key then
    local uk = qkey(queue, 'u')
    if redis.call('HGET', uk, key) == id then
      redis.call('HDEL', uk, key)
    end
  end
end

-- `stored` errors (JSON or false) with one more, the newest MAX_ERRORS kept, as JSON.
local function add_error(stored, attempt, message, now)
  local list = {}
  if stored then
    list = cjson.decode(stored)
  end
  list[#list + 1] = { a = attempt, m = message, t = int(now) }
  while #list > MAX_ERRORS do
    table.remove(list, 1)
  end
  return cjson.encode(list)
end

-- Counts `n` (default 1) completions (kind 'c') or failed attempts ('f'): total `<kind>t`, and the counts
-- of the current minute `<kind>c` and the one before `<kind>p`, for minute `<kind>m`.
local function count_event(queue, kind, now, n)
  n = n or 1
  local mk = qkey(queue, 'm')
  local minute = math.floor(now / 60000)
  local f = redis.call('HMGET', mk, kind .. 't', kind .. 'm', kind .. 'c')
  local m, c = tonumber(f[2]), tonumber(f[3]) or 0
  local fields = { kind .. 't', int((tonumber(f[1]) or 0) + n), kind .. 'm', int(minute) }
  if m == minute then
    c = c + n
  else
    local prev = 0
    if m == minute - 1 then
      prev = c
    end
    c = n
    fields[#fields + 1] = kind .. 'p'
    fields[#fields + 1] = int(prev)
  end
  fields[#fields + 1] = kind .. 'c'
  fields[#fields + 1] = int(c)
  redis.call('HSET', mk, unpack(fields))
end

-- (this minute, last minute) counts from the stored minute `m` and counts `c`, `p`.
local function minute_counts(m, c, p, now)
  local minute = math.floor(now / 60000)
  m = tonumber(m)
  if m == minute then
    return tonumber(c) or 0, tonumber(p) or 0
  elseif m == minute - 1 then
    return 0, tonumber(c) or 0
  end
  return 0, 0
end

-- Backoff::delay_ms, operation for operation: `encoded` is Backoff::encode's form.
local function backoff_delay(encoded, attempt, random)
  local p = {}
  for part in string.gmatch(encoded, '[^:]+') do
    p[#p + 1] = part
  end
  local n = math.max(attempt, 1)
  if p[1] == 'f' then
    return tonumber(p[2])
  elseif p[1] == 'e' then
    local d = math.min(tonumber(p[2]) * 2 ^ (n - 1), tonumber(p[3]))
    if p[4] == '1' then
      d = d / 2 + d / 2 * math.min(math.max(random, 0), 1)
    end
    return math.floor(d)
  elseif p[1] == 'p' then
    return math.floor(math.min(tonumber(p[2]) * n ^ tonumber(p[3]), tonumber(p[4])))
  end
  return error('bad stored backoff ' .. encoded)
end

-- Deletes job hashes, ending their claims.
local function drop_jobs(ids, now)
  local keys = {}
  for i, id in ipairs(ids) do
    local jk = job_key(id)
    keys[i] = jk
    local n = not ONE and redis.call('HGET', jk, 'n')
    if n then
      end_claim(id, n, now)
    end
  end
  redis.call('DEL', unpack(keys))
end

-- Applies retention to a finished set (part 'c' or 'x'): drops entries older than `max_age`
-- ms and beyond the newest `max`, with their job hashes; at most BUDGET of each per call.
local function trim(queue, part, max, max_age, now)
  local set = qkey(queue, part)
  local old = redis.call('ZRANGEBYSCORE', set, '-inf', '(' .. int((now - max_age) * FIN_SCALE), 'LIMIT', 0, BUDGET)
  if #old > 0 then
    drop_jobs(old, now)
    redis.call('ZREM', set, unpack(old))
  end
  local over = redis.call('ZCARD', set) - max
  if over > 0 then
    local ids = redis.call('ZRANGE', set, 0, math.min(over, BUDGET) - 1)
    drop_jobs(ids, now)
    redis.call('ZREMRANGEBYRANK', set, 0, #ids - 1)
  end
end

-- Adds jobs `ids` (their hashes already finished), in order, to a finished set and applies
-- retention once.
local function finish_many(queue, ids, part, now, max, max_age)
  local set = qkey(queue, part)
  local score = now * FIN_SCALE
  local top = redis.call('ZRANGE', set, -1, -1, 'WITHSCORES')
  if top[2] and tonumber(top[2]) >= score then
    score = tonumber(top[2]) + 1
  end
  local args = {}
  for i, id in ipairs(ids) do
    args[#args + 1] = int(score + i - 1)
    args[#args + 1] = id
  end
  redis.call('ZADD', set, unpack(args))
  trim(queue, part, max, max_age, now)
end

-- Adds job `id` (its hash already finished) to a finished set and applies retention.
local function finish(queue, id, part, now, max, max_age)
  finish_many(queue, { id }, part, now, max, max_age)
end

-- Kills an active or released job: dead now, unique key freed, retention applied.
-- `fields` are more hash fields to set (name, value, ...).
local function to_dead(queue, id, unique, now, fields, dead_max, dead_age)
  local jk = job_key(id)
  redis.call('HDEL', jk, 'k', 'le')
  redis.call('HSET', jk, 's', 'dead', 'f', int(now), unpack(fields))
  release_unique(queue, unique, id)
  finish(queue, id, 'x', now, dead_max, dead_age)
end

-- Lease check of an active job: 0 and the fields (`s`, `k`, then `...`) when `token` holds it,
-- 1 when there is no such job, 2 when it is not active under `token`. Plain equality (Lua has
-- no constant-time compare): acceptable, as tokens carry 128 random bits and the compare runs
-- inside Redis, behind the noise of a network round trip.
local function leased(jk, token, ...)
  local f = redis.call('HMGET', jk, 's', 'k', ...)
  if not f[1] then
    return 1, f
  elseif f[1] ~= 'active' or f[2] ~= token then
    return 2, f
  end
  return 0, f
end

-- A lease ran out: a failed attempt ('lease expired'); waiting again at once with attempts
-- left, else dead. The caller removes it from the active set.
local function expire_lease(queue, id, now, dead_max, dead_age)
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'a', 'ma', 'pr', 'e', 'u')
  if not f[1] then
    return
  end
  local attempts = tonumber(f[1])
  local errors = add_error(f[4], attempts, 'lease expired', now)
  count_event(queue, 'f', now)
  if attempts < tonumber(f[2]) then
    redis.call('HDEL', jk, 'k', 'le')
    redis.call('HSET', jk, 's', 'waiting', 'r', int(now), 'e', errors)
    push_waiting(queue, id, tonumber(f[3]), next_seq(queue, 1))
  else
    to_dead(queue, id, f[5], now, { 'e', errors }, dead_max, dead_age)
  end
end

-- Moves due delayed jobs of `queue` to waiting (by due time, then enqueue order) and handles
-- its expired leases, at most `budget` jobs in all; how many it handled.
local function settle(queue, now, budget, dead_max, dead_age)
  if budget <= 0 then
    return 0
  end
  local dk = qkey(queue, 'd')
  local due = redis.call('ZRANGEBYSCORE', dk, '-inf', int(now), 'WITHSCORES', 'LIMIT', 0, budget)
  local moved = #due / 2
  if moved > 0 then
    local jobs, ids = {}, {}
    for i = 1, #due, 2 do
      ids[#ids + 1] = due[i]
      local f = redis.call('HMGET', job_key(due[i]), 'pr', 'sq')
      if f[1] then
        jobs[#jobs + 1] = { id = due[i], at = tonumber(due[i + 1]), pr = tonumber(f[1]), sq = tonumber(f[2]) or 0 }
      end
    end
    table.sort(jobs, function(x, y)
      if x.at ~= y.at then
        return x.at < y.at
      end
      return x.sq < y.sq
    end)
    redis.call('ZREM', dk, unpack(ids))
    if #jobs > 0 then
      local seq = next_seq(queue, #jobs)
      for i, j in ipairs(jobs) do
        push_waiting(queue, j.id, j.pr, seq + i - 1)
        redis.call('HSET', job_key(j.id), 's', 'waiting')
      end
    end
  end
  if budget - moved <= 0 then
    return moved
  end
  local ak = qkey(queue, 'a')
  local expired = redis.call('ZRANGEBYSCORE', ak, '-inf', int(now), 'LIMIT', 0, budget - moved)
  if #expired > 0 then
    redis.call('ZREM', ak, unpack(expired))
    for _, id in ipairs(expired) do
      expire_lease(queue, id, now, dead_max, dead_age)
    end
  end
  return moved + #expired
end

-- Stores one job as JobStore::enqueue describes, from 13 arguments starting at ARGV[a]: the
-- number of the id claim it holds (on a Cluster; '' on one server), id, queue, type, payload, priority, due kind ('n' now,
-- 'a' after ms, 't' at ms), due ms, max attempts, backoff, lease ms, has unique key ('1'/'0'),
-- unique key.
-- Returns the outcome ('c' created, 'i' existing id, 'u' duplicate unique key, 'r' the claim
-- ended: claim again), the id of the job it names and that job's state ('' for 'r').
local function enqueue_job(a, now)
  local n = ARGV[a]
  a = a + 1
  local id, queue = ARGV[a], ARGV[a + 1]
  local jk = job_key(id)
  local existing = redis.call('HGET', jk, 's')
  if existing then
    return 'i', id, existing
  end
  if ONE then
    -- (On a Cluster the claim lists the queue.)
    redis.call('SADD', HP .. 'queues', queue)
  end
  if not ONE and claim_ended(id, n) then
    return 'r', id, ''
  end
  local unique = nil
  if ARGV[a + 10] == '1' then
    unique = ARGV[a + 11]
    local uk = qkey(queue, 'u')
    local holder = redis.call('HGET', uk, unique)
    if holder then
      local state = redis.call('HGET', job_key(holder), 's')
      if state == 'waiting' or state == 'delayed' or state == 'active' then
        -- Nothing is stored under the claim: end it, the caller frees it.
        end_claim(id, n, now)
        return 'u', holder, state
      end
    end
    redis.call('HSET', uk, unique, id)
  end
  local priority = tonumber(ARGV[a + 4])
  local run_at = now
  if ARGV[a + 5] == 'a' then
    run_at = now + tonumber(ARGV[a + 6])
  elseif ARGV[a + 5] == 't' then
    run_at = tonumber(ARGV[a + 6])
  end
  local seq = next_seq(queue, 1)
  local state = 'waiting'
  if run_at > now then
    state = 'delayed'
    redis.call('ZADD', qkey(queue, 'd'), int(run_at), id)
  else
    push_waiting(queue, id, priority, seq)
  end
  local fields = {
    'q', queue, 't', ARGV[a + 2], 'p', ARGV[a + 3], 'pr', int(priority), 's', state, 'a', '0',
    'ma', ARGV[a + 7], 'b', ARGV[a + 8], 'l', ARGV[a + 9], 'c', int(now), 'r', int(run_at), 'sq', int(seq),
  }
  if not ONE then
    fields[#fields + 1] = 'n'
    fields[#fields + 1] = n
  end
  if unique then
    fields[#fields + 1] = 'u'
    fields[#fields + 1] = unique
  end
  redis.call('HSET', jk, unpack(fields))
  return 'c', id, state
end
