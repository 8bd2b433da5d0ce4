-- job_retry_dead.lua: moves a dead job back to waiting with its attempts reset (errors kept);
-- it holds its unique key again.
-- KEYS[1]: the job's hash. ARGV[1]: the queue prefix; ARGV[2]: job id.
-- Returns 0 done, 1 no such job, 2 not dead, 3 another pending or active job holds its key.
local id = ARGV[2]
local f = redis.call('HMGET', KEYS[1], 's', 'q', 'pr', 'u')
if not f[1] then
  return 1
elseif f[1] ~= 'dead' then
  return 2
end
local queue = f[2]
local uk = qkey(queue, 'u')
if f[4] then
  local holder = redis.call('HGET', uk, f[4])
  if holder and holder ~= id then
    local state = redis.call('HGET', job_key(holder), 's')
    if state == 'waiting' or state == 'delayed' or state == 'active' then
      return 3
    end
  end
  redis.call('HSET', uk, f[4], id)
end
local now = now_ms()
local seq = next_seq(queue, 1)
redis.call('ZREM', qkey(queue, 'x'), id)
redis.call('HDEL', KEYS[1], 'f')
redis.call('HSET', KEYS[1], 's', 'waiting', 'a', '0', 'r', int(now), 'sq', int(seq))
push_waiting(queue, id, tonumber(f[3]), seq)
return 0
