-- job_schedule_due.lua: the server clock and the schedules whose next tick has come.
-- KEYS[1]: definitions; KEYS[2]: next ticks; KEYS[3]: last fired. ARGV[1]: the jobs prefix;
-- ARGV[2]: limit (>= 1).
-- Returns {now, name, JSON, next tick ms, last fired ms or nil, ...} (flat).
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', int(now), 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local out = { now }
for i = 1, #due, 2 do
  local json = redis.call('HGET', KEYS[1], due[i])
  if json then
    local n = #out
    out[n + 1] = due[i]
    out[n + 2] = json
    out[n + 3] = due[i + 1]
    out[n + 4] = redis.call('HGET', KEYS[3], due[i])
  end
end
return out
