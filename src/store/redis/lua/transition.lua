-- Apply a lifecycle action: change the status only from an allowed source status.
-- KEYS: record bucket, audit list
-- ARGV: id, target status byte, allowed source status bytes, audit event JSON without its
--       closing brace and without token_name / owner (taken from the record here), audit limit,
--       channel, invalidation message
-- Returns {'ok'}, {'same'}, {'missing'} or {'conflict', current status byte}.
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then
  return {'missing'}
end
local st = rec_status(v)
if st == ARGV[2] then
  return {'same'}
end
if not string.find(ARGV[3], st, 1, true) then
  return {'conflict', st}
end
redis.call('HSET', KEYS[1], ARGV[1], rec_with_status(v, ARGV[2]))
local head = rec_head(v)
audit(KEYS[2], ARGV[4] .. ',"token_name":' .. cjson.encode(head[2]) .. ',"owner":' .. cjson.encode(head[3]) .. '}',
  ARGV[5])
redis.call('PUBLISH', ARGV[6], ARGV[7])
return {'ok'}
