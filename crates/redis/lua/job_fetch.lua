-- job_fetch.lua: settles one queue, then leases up to one job per token from it, best first.
-- A paused queue is skipped entirely (not settled, no next event). A fetch over several queues
-- runs this once per queue, in the order given.
-- With types, only jobs of those types are leased: the first SCAN waiting jobs are looked at,
-- in order, and the others stay where they are.
-- KEYS[1]: the queue's meta hash (the slot). ARGV[1]: the queue prefix; ARGV[2]: lease ms
-- ('' = each job's own); ARGV[3]: dead max; ARGV[4]: dead max age ms; ARGV[5]: type count m
-- (0 = every type); ARGV[6..5+m]: the types; then the lease tokens (maybe none).
-- Returns {now, next event ms or false, FREED, record...} with each record as in
-- job_common.lua, already active (the i-th record holds the i-th token).
local now = now_ms()
local out = { now, false, FREED }
if redis.call('HGET', qkey(nil, 'm'), 'paused') == '1' then
  return out
end
local lease = tonumber(ARGV[2])
local dead_max, dead_age = tonumber(ARGV[3]), tonumber(ARGV[4])
local nt = tonumber(ARGV[5])
local types = {}
for i = 6, 5 + nt do
  types[ARGV[i]] = true
end
local SCAN = 1000
settle(nil, now, BUDGET, dead_max, dead_age)
local t = 6 + nt
if t <= #ARGV then
  local wk = qkey(nil, 'w')
  local ids = {}
  if nt == 0 then
    local popped = redis.call('ZPOPMIN', wk, #ARGV - t + 1)
    for j = 1, #popped, 2 do
      ids[#ids + 1] = popped[j]
    end
  else
    for _, id in ipairs(redis.call('ZRANGE', wk, 0, SCAN - 1)) do
      if #ids > #ARGV - t then
        break
      end
      if types[redis.call('HGET', job_key(id), 't')] then
        ids[#ids + 1] = id
      end
    end
    if #ids > 0 then
      redis.call('ZREM', wk, unpack(ids))
    end
  end
  local ak = qkey(nil, 'a')
  for _, id in ipairs(ids) do
    local rec = record(id)
    if rec then
      local attempts = int(tonumber(rec[R.a]) + 1)
      local lease_end = int(now + (lease or tonumber(rec[R.l])))
      redis.call('HSET', job_key(id), 's', 'active', 'a', attempts, 'st', int(now), 'le', lease_end, 'k', ARGV[t])
      redis.call('ZADD', ak, lease_end, id)
      rec[R.s], rec[R.a], rec[R.st], rec[R.le] = 'active', attempts, int(now), lease_end
      out[#out + 1] = rec
      t = t + 1
    end
  end
end
local next_event = nil
for _, part in ipairs({ 'd', 'a' }) do
  local first = redis.call('ZRANGE', qkey(nil, part), 0, 0, 'WITHSCORES')
  if first[2] then
    local at = tonumber(first[2])
    if not next_event or at < next_event then
      next_event = at
    end
  end
end
if next_event then
  out[2] = next_event
end
return out
