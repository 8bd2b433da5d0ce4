-- job_claim.lua: claims job ids for queues in the global id index: an id not claimed yet is
-- claimed for the queue given under a fresh claim number; a claimed one keeps its claim.
-- Queue names are added to the queue-name set.
-- KEYS[1]: the id index; KEYS[2]: the queue-name set; KEYS[3]: the claim counter.
-- ARGV: id, queue, ... Returns per id its claim `<number>:<queue>`.
local out = {}
for i = 1, #ARGV, 2 do
  local claim = redis.call('HGET', KEYS[1], ARGV[i])
  if not claim then
    claim = redis.call('INCR', KEYS[3]) .. ':' .. ARGV[i + 1]
    redis.call('HSET', KEYS[1], ARGV[i], claim)
    redis.call('SADD', KEYS[2], ARGV[i + 1])
  end
  out[#out + 1] = claim
end
return out
