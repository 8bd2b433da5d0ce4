-- job_release.lua: puts an active job held under a token back to waiting, not counting the
-- attempt.
-- KEYS[1]: the job's hash. ARGV[1]: the queue prefix; ARGV[2]: job id; ARGV[3]: token.
-- Returns 0 done, 1 no such job, 2 not active under this token.
local id = ARGV[2]
local code, f = leased(KEYS[1], ARGV[3], 'q', 'a', 'pr')
if code ~= 0 then
  return code
end
local now = now_ms()
local queue = f[3]
local seq = next_seq(queue, 1)
redis.call('ZREM', qkey(queue, 'a'), id)
redis.call('HDEL', KEYS[1], 'k', 'le')
redis.call('HSET', KEYS[1], 's', 'waiting', 'a', int(math.max(tonumber(f[4]) - 1, 0)), 'r', int(now), 'sq', int(seq))
push_waiting(queue, id, tonumber(f[5]), seq)
return 0
