-- job_cancel_unique_prefix.lua: removes the pending jobs of a queue whose unique key starts with
-- a prefix; active holders are left alone.
-- KEYS[1]: the queue's meta hash (the slot). ARGV[1]: the queue prefix; ARGV[2]: queue; ARGV[3]: key prefix.
-- Returns {the removed jobs' ids, FREED}.
local queue = ARGV[2]
local prefix = ARGV[3]
local uk = qkey(queue, 'u')
local now = now_ms()
local removed = {}
-- Plain comparison, not a glob: a prefix may hold characters HSCAN MATCH would read as patterns.
for _, key in ipairs(redis.call('HKEYS', uk)) do
  if string.sub(key, 1, #prefix) == prefix then
    local id = redis.call('HGET', uk, key)
    local jk = job_key(id)
    local state = redis.call('HGET', jk, 's')
    if state == 'waiting' or state == 'delayed' then
      redis.call('ZREM', qkey(queue, state == 'waiting' and 'w' or 'd'), id)
      drop_jobs({ id }, now)
      removed[#removed + 1] = id
      redis.call('HDEL', uk, key)
    elseif state ~= 'active' then
      -- A stale entry (its holder finished or is gone): drop it.
      redis.call('HDEL', uk, key)
    end
  end
end
return { removed, FREED }
