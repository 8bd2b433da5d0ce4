-- session_update_data.lua: merges a patch into the session's data, one hash field per data
-- field ('d:' .. name = compact JSON), so concurrent patches of different fields never lose
-- each other's writes. Not activity: the expiry does not move.
-- KEYS[1]: the session's hash
-- ARGV[1]: largest data size allowed (bytes, measured like core's data_size())
-- ARGV[2..]: name, value pairs: value = compact JSON, or '' to delete the field (a JSON null)
-- Returns nil when the session is not live, {0, {}} when the merged data would be too large
-- (nothing changed), else {1, fields} with the hash as a flat field, value list.
local now = now_ms()
local expires = session_expiry(KEYS[1])
if not expires or now >= expires then
  return nil
end
local max = tonumber(ARGV[1])
local patch = {}
for i = 2, #ARGV, 2 do
  patch[ARGV[i]] = ARGV[i + 1]
end

-- data_size(): the sum over fields of the name's length plus the compact JSON value's length.
local size = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 'd:' then
    local name = string.sub(fields[i], 3)
    if patch[name] == nil then
      size = size + #name + #fields[i + 1]
    end
  end
end
for name, value in pairs(patch) do
  if value ~= '' then
    size = size + #name + #value
  end
end
if size > max then
  return {0, {}}
end

for name, value in pairs(patch) do
  if value == '' then
    redis.call('HDEL', KEYS[1], 'd:' .. name)
  else
    redis.call('HSET', KEYS[1], 'd:' .. name, value)
  end
end
return {1, redis.call('HGETALL', KEYS[1])}
