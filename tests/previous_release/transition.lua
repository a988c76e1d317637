-- Apply a lifecycle action: change the status only from an allowed source status.
-- KEYS: token hash, audit list
-- ARGV: target status, allowed sources as ",a,b,", audit event JSON without its closing brace
--       and without token_name / owner (taken from the record here), audit limit, channel,
--       invalidation message
-- Returns {'ok'}, {'same'}, {'missing'} or {'conflict', current status}.
local st = redis.call('HGET', KEYS[1], 'st')
if not st then
  return {'missing'}
end
if st == ARGV[1] then
  return {'same'}
end
if not string.find(ARGV[2], ',' .. st .. ',', 1, true) then
  return {'conflict', st}
end
redis.call('HSET', KEYS[1], 'st', ARGV[1])
local rec = cjson.decode(redis.call('HGET', KEYS[1], 'rec'))
local event = ARGV[3] .. ',"token_name":' .. cjson.encode(rec.name) .. ',"owner":' .. cjson.encode(rec.owner) .. '}'
redis.call('LPUSH', KEYS[2], event)
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
redis.call('PUBLISH', ARGV[5], ARGV[6])
return {'ok'}
