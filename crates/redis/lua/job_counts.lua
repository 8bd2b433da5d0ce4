-- job_counts.lua: a queue's counts, after settling it as fetch does (not when paused).
-- KEYS[1]: the queue's meta hash (the slot). ARGV[1]: the queue prefix; ARGV[2]: queue; ARGV[3]: dead max;
-- ARGV[4]: dead max age ms.
-- Returns {now, waiting, delayed, active, completed, dead, paused (1|0), completed total,
-- failed total, completed this minute, completed last minute, failed this minute, failed
-- last minute, FREED}.
local queue = ARGV[2]
local now = now_ms()
if redis.call('HGET', qkey(queue, 'm'), 'paused') ~= '1' then
  settle(queue, now, BUDGET, tonumber(ARGV[3]), tonumber(ARGV[4]))
end
local out = { now }
for _, part in ipairs({ 'w', 'd', 'a', 'c', 'x' }) do
  out[#out + 1] = redis.call('ZCARD', qkey(queue, part))
end
local m = redis.call('HMGET', qkey(queue, 'm'), 'paused', 'ct', 'ft', 'cm', 'cc', 'cp', 'fm', 'fc', 'fp')
out[#out + 1] = m[1] == '1' and 1 or 0
out[#out + 1] = tonumber(m[2]) or 0
out[#out + 1] = tonumber(m[3]) or 0
local c_this, c_last = minute_counts(m[4], m[5], m[6], now)
local f_this, f_last = minute_counts(m[7], m[8], m[9], now)
out[#out + 1] = c_this
out[#out + 1] = c_last
out[#out + 1] = f_this
out[#out + 1] = f_last
out[#out + 1] = FREED
return out
