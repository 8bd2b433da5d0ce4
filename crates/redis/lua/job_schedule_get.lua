-- job_schedule_get.lua: schedules with their timing: the one named, or all of them.
-- KEYS[1]: definitions; KEYS[2]: next ticks; KEYS[3]: last fired. ARGV[1]: the jobs prefix;
-- ARGV[2]: a name, or '' for every schedule.
-- Returns {name, JSON, next tick ms or nil, last fired ms or nil, ...} (flat).
local names
if ARGV[2] == '' then
  names = redis.call('HKEYS', KEYS[1])
else
  names = { ARGV[2] }
end
local out = {}
for _, name in ipairs(names) do
  local json = redis.call('HGET', KEYS[1], name)
  if json then
    local n = #out
    out[n + 1] = name
    out[n + 2] = json
    out[n + 3] = redis.call('ZSCORE', KEYS[2], name)
    out[n + 4] = redis.call('HGET', KEYS[3], name)
  end
end
return out
