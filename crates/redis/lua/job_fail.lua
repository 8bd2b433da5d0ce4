-- job_fail.lua: fails the current attempt of an active job held under a token: records the
-- error, then retries it (delayed, or waiting when the delay is 0) or kills it.
-- KEYS[1]: the job's hash. ARGV[1]: the queue prefix; ARGV[2]: job id; ARGV[3]: token;
-- ARGV[4]: error message; ARGV[5]: retry 'b' (backoff), 'a' (after ARGV[6] ms) or 'n' (never);
-- ARGV[6]: delay ms; ARGV[7]: random in [0, 1) for the jitter; ARGV[8]: dead max;
-- ARGV[9]: dead max age ms.
-- Returns {0, FREED, state, retry-at ms or nil}, or {1} no such job, {2} not active under this token.
local id = ARGV[2]
local code, f = leased(KEYS[1], ARGV[3], 'q', 'u', 'a', 'ma', 'b', 'pr', 'e')
if code ~= 0 then
  return { code }
end
local now = now_ms()
local queue, attempts = f[3], tonumber(f[5])
local errors = add_error(f[9], attempts, ARGV[4], now)
count_event(queue, 'f', now)
redis.call('ZREM', qkey(queue, 'a'), id)
if ARGV[5] ~= 'n' and attempts < tonumber(f[6]) then
  local delay
  if ARGV[5] == 'a' then
    delay = tonumber(ARGV[6])
  else
    delay = backoff_delay(f[7], attempts, tonumber(ARGV[7]))
  end
  local seq = next_seq(queue, 1)
  redis.call('HDEL', KEYS[1], 'k', 'le')
  if delay <= 0 then
    redis.call('HSET', KEYS[1], 's', 'waiting', 'r', int(now), 'sq', int(seq), 'e', errors)
    push_waiting(queue, id, tonumber(f[8]), seq)
    return { 0, FREED, 'waiting', now }
  end
  local run_at = now + delay
  redis.call('HSET', KEYS[1], 's', 'delayed', 'r', int(run_at), 'sq', int(seq), 'e', errors)
  redis.call('ZADD', qkey(queue, 'd'), int(run_at), id)
  return { 0, FREED, 'delayed', run_at }
end
to_dead(queue, id, f[4], now, { 'e', errors }, tonumber(ARGV[8]), tonumber(ARGV[9]))
return { 0, FREED, 'dead' }
