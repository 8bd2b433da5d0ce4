-- job_complete_many.lua: completes a batch of active jobs of one queue, each held under its
-- token, then counts and applies retention once. KEYS[1]: the queue's meta hash (the slot).
-- ARGV[1]: the queue prefix; ARGV[2]: completed max; ARGV[3]: completed max age ms; then per job
-- four arguments: id, token, '1' when a result follows, result.
-- Returns {one status per job (0 done, 1 no such job, 2 not active under this token), FREED}.
local now = now_ms()
local max, max_age = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
-- queue -> ids completed, in order
local done = {}
local order = {}
for i = 4, #ARGV, 4 do
  local id = ARGV[i]
  local jk = job_key(id)
  local code, f = leased(jk, ARGV[i + 1], 'q', 'u')
  out[#out + 1] = code
  if code == 0 then
    local queue = f[3]
    redis.call('ZREM', qkey(queue, 'a'), id)
    redis.call('HDEL', jk, 'k', 'le')
    if ARGV[i + 2] == '1' then
      redis.call('HSET', jk, 's', 'completed', 'f', int(now), 'rs', ARGV[i + 3])
    else
      redis.call('HSET', jk, 's', 'completed', 'f', int(now))
    end
    release_unique(queue, f[4], id)
    if not done[queue] then
      done[queue] = {}
      order[#order + 1] = queue
    end
    local ids = done[queue]
    ids[#ids + 1] = id
  end
end
for _, queue in ipairs(order) do
  count_event(queue, 'c', now, #done[queue])
  finish_many(queue, done[queue], 'c', now, max, max_age)
end
return { out, FREED }
