-- job_cancel_unique.lua: removes the pending jobs of a queue holding any of some unique keys;
-- active holders are left alone.
-- KEYS[1]: the queue's meta hash (the slot). ARGV[1]: the queue prefix; ARGV[2]: queue; ARGV[3..]: keys.
-- Returns {the removed jobs' ids, FREED}.
local queue = ARGV[2]
local uk = qkey(queue, 'u')
local now = now_ms()
local removed = {}
for i = 3, #ARGV do
  local id = redis.call('HGET', uk, ARGV[i])
  if id then
    local jk = job_key(id)
    local state = redis.call('HGET', jk, 's')
    if state == 'waiting' or state == 'delayed' then
      redis.call('ZREM', qkey(queue, state == 'waiting' and 'w' or 'd'), id)
      drop_jobs({ id }, now)
      removed[#removed + 1] = id
      redis.call('HDEL', uk, ARGV[i])
    elseif state ~= 'active' then
      -- A stale entry (its holder finished or is gone): drop it.
      redis.call('HDEL', uk, ARGV[i])
    end
  end
end
return { removed, FREED }
