-- session_alias.lua: reserves a caller-chosen session id for the shard of its user, so a lookup
-- by the id alone finds the slot of the session (a generated id carries its shard instead).
-- KEYS[1]: the id's alias key (in the id's own slot)
-- ARGV[1]: the user's shard (4 hex digits)   ARGV[2]: keep the alias at least this long (ms)
-- Returns 1 when the id is reserved for that shard, 0 when another shard holds it.
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then
  return 0
end
local ttl = redis.call('PTTL', KEYS[1])
local keep = tonumber(ARGV[2])
if ttl < keep then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', keep)
end
return 1
