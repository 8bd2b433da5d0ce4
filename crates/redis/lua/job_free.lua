-- job_free.lua: frees ended claims in the global id index: an id is dropped only while it still
-- holds the claim given (a newer claim stays).
-- KEYS[1]: the id index. ARGV: id, claim `<number>:<queue>`, ...
-- Returns how many were dropped.
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    n = n + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return n
