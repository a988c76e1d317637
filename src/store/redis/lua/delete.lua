-- Delete a revoked token, drop it from both indexes, drop its limiter state (rate and quota use)
-- and retire its id.
-- KEYS: record bucket, retired ids, audit list, global index directory, leaf, owner index
--       directory, leaf, limiter hash
-- ARGV: id, index key, global leaf member, owner leaf member, audit event JSON, audit limit,
--       channel
-- Returns {'ok'}, {'missing'}, {'conflict', current status byte} or {'moved'} (a leaf split
-- meanwhile: resolve the leaves again).
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then
  return {'missing'}
end
local st = rec_status(v)
if st ~= 'r' then
  return {'conflict', st}
end
if leaf_of(KEYS[4], ARGV[2]) ~= ARGV[3] or leaf_of(KEYS[6], ARGV[2]) ~= ARGV[4] then
  return {'moved'}
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[8])
index_remove(KEYS[4], KEYS[5], ARGV[3], ARGV[2])
index_remove(KEYS[6], KEYS[7], ARGV[4], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
audit(KEYS[3], ARGV[5], ARGV[6])
redis.call('PUBLISH', ARGV[7], 't:' .. ARGV[1])
return {'ok'}
