-- job_remove.lua: removes a job that is not active (cancel a pending one, delete a finished one).
-- KEYS[1]: the job's hash. ARGV[1]: the queue prefix; ARGV[2]: job id.
-- Returns {0, state it was in, FREED}, {1} no such job, {2} active.
local id = ARGV[2]
local f = redis.call('HMGET', KEYS[1], 's', 'q', 'u')
local state, queue = f[1], f[2]
if not state then
  return { 1 }
elseif state == 'active' then
  return { 2 }
end
local part = ({ waiting = 'w', delayed = 'd', completed = 'c', dead = 'x' })[state]
redis.call('ZREM', qkey(queue, part), id)
release_unique(queue, f[3], id)
drop_jobs({ id }, now_ms())
return { 0, state, FREED }
