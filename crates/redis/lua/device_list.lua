-- device_list.lua: a user's devices active within the retention, most recently active first.
-- KEYS[1]: the user's device registrations  KEYS[2]: the user's device activity (ZSET device -> ms)
-- ARGV[1]: retention (ms)
-- Returns {{device, last_active, registered_at, registration JSON}, ...}.
local now = now_ms()
forget_inactive(KEYS[1], KEYS[2], now - tonumber(ARGV[1]))
local out = {}
local active = redis.call('ZREVRANGE', KEYS[2], 0, -1, 'WITHSCORES')
for i = 1, #active, 2 do
  local f = redis.call('HMGET', KEYS[1], 'r:' .. active[i], 'j:' .. active[i])
  if f[1] and f[2] then
    out[#out + 1] = {active[i], active[i + 1], f[1], f[2]}
  end
end
return out
