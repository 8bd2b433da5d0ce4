-- cache_keys.lua: one page of a namespace's keys with a prefix whose values have not expired
-- (as cache_stats.lua counts them), in ascending byte order.
-- KEYS[1]: keys by name; KEYS[2]: keys by expiry
-- ARGV[1]: key prefix ('' for all); ARGV[2]: cursor, the last key of the previous page ('' for
-- none); ARGV[3]: most keys to return
-- Returns {keys, next}: next is the cursor of the next page, '' on the last one. At most
-- 10 x limit names are scanned per call (expired ones are skipped), so a page may come back
-- short, with a cursor.
local now = now_ms()
local prefix, cursor, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local start = '[' .. prefix
if cursor ~= '' and cursor >= prefix then
  start = '(' .. cursor
end
-- Cache keys are UTF-8, which never holds byte 0xFF, so it bounds the prefix's range.
local stop = '(' .. prefix .. '\255'
if prefix == '' then
  stop = '+'
end
local budget = limit * 10
local out, last = {}, ''
while #out < limit and budget > 0 do
  local batch = redis.call('ZRANGEBYLEX', KEYS[1], start, stop, 'LIMIT', 0, math.min(budget, limit - #out + 100))
  if #batch == 0 then
    return {out, ''}
  end
  for _, k in ipairs(batch) do
    budget = budget - 1
    last = k
    local expires = redis.call('ZSCORE', KEYS[2], k)
    if expires and tonumber(expires) > now then
      out[#out + 1] = k
      if #out == limit then
        break
      end
    end
  end
  start = '(' .. last
end
return {out, last}
