-- job_complete.lua: completes an active job held under a token, then applies retention.
-- KEYS[1]: the job's hash. ARGV[1]: the queue prefix; ARGV[2]: job id; ARGV[3]: token;
-- ARGV[4]: '1' when a result follows; ARGV[5]: result; ARGV[6]: completed max;
-- ARGV[7]: completed max age ms.
-- Returns {0, FREED} done, {1} no such job, {2} not active under this token.
local id = ARGV[2]
local code, f = leased(KEYS[1], ARGV[3], 'q', 'u')
if code ~= 0 then
  return { code }
end
local now = now_ms()
local queue = f[3]
redis.call('ZREM', qkey(queue, 'a'), id)
redis.call('HDEL', KEYS[1], 'k', 'le')
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 's', 'completed', 'f', int(now), 'rs', ARGV[5])
else
  redis.call('HSET', KEYS[1], 's', 'completed', 'f', int(now))
end
release_unique(queue, f[4], id)
count_event(queue, 'c', now)
finish(queue, id, 'c', now, tonumber(ARGV[6]), tonumber(ARGV[7]))
return { 0, FREED }
