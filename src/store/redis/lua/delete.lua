-- Delete a revoked token, drop it from both indexes and retire its id.
-- KEYS: token hash, global index, owner index, retired ids, audit list
-- ARGV: id, index key, audit event JSON, audit limit, channel
-- Returns {'ok'}, {'missing'} or {'conflict', current status}.
local st = redis.call('HGET', KEYS[1], 'st')
if not st then
  return {'missing'}
end
if st ~= 'revoked' then
  return {'conflict', st}
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('LPUSH', KEYS[5], ARGV[3])
redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[4]) - 1)
redis.call('PUBLISH', ARGV[5], 't:' .. ARGV[1])
return {'ok'}
