-- presence_nodes.lua: node reports, each kept until its expiry; reports past it are removed.
-- KEYS[1]: the reports hash (node id -> JSON {"node_id", "connections", "reported_at"(ms), "x"(ms)})
-- ARGV[1]: 'put' or 'list'; for 'put': ARGV[2] node id, ARGV[3] connections, ARGV[4] ttl ms.
-- Returns nil for 'put'; for 'list', {now ms, report JSON...} of the live reports.
local now = now_ms()
local live = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local report = cjson.decode(all[i + 1])
  if report.x <= now then
    redis.call('HDEL', KEYS[1], all[i])
  elseif ARGV[1] == 'list' then
    live[#live + 1] = all[i + 1]
  end
end
if ARGV[1] == 'put' then
  local report = { node_id = ARGV[2], connections = tonumber(ARGV[3]), reported_at = now, x = now + tonumber(ARGV[4]) }
  redis.call('HSET', KEYS[1], ARGV[2], cjson.encode(report))
  return nil
end
table.insert(live, 1, now)
return live
