-- job_list.lua: a page of a queue's jobs in one state.
-- KEYS[1]: the queue's meta hash (the slot). ARGV[1]: the queue prefix; ARGV[2]: queue; ARGV[3]: part
-- (w, d, a, c, x); ARGV[4]: '1' = newest first; ARGV[5]: offset; ARGV[6]: limit (>= 1).
-- Returns the records (see job_common.lua).
local set = qkey(ARGV[2], ARGV[3])
local from = tonumber(ARGV[5])
local to = from + tonumber(ARGV[6]) - 1
local ids
if ARGV[4] == '1' then
  ids = redis.call('ZREVRANGE', set, from, to)
else
  ids = redis.call('ZRANGE', set, from, to)
end
local out = {}
for _, id in ipairs(ids) do
  local rec = record(id)
  if rec then
    out[#out + 1] = rec
  end
end
return out
