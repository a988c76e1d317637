-- Insert a new token unless its id exists (in either record format) or was ever used.
-- KEYS: record bucket, retired ids, audit list, the previous release's token hash,
--       global index directory, leaf, fresh leaf, owner index directory, leaf, fresh leaf
-- ARGV: id, record, index key, its cursor (names a leaf that a split creates), global leaf
--       member, owner leaf member, audit event JSON, leaf capacity, audit limit, channel
-- Returns 1 (created), 0 (id taken) or -1 (a leaf split meanwhile: resolve the leaves again).
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('EXISTS', KEYS[4]) == 1
    or redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return 0
end
if leaf_of(KEYS[5], ARGV[3]) ~= ARGV[5] or leaf_of(KEYS[8], ARGV[3]) ~= ARGV[6] then
  return -1
end
local cap = tonumber(ARGV[8])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
index_add(KEYS[5], KEYS[6], KEYS[7], ARGV[3], ARGV[4], cap)
index_add(KEYS[8], KEYS[9], KEYS[10], ARGV[3], ARGV[4], cap)
audit(KEYS[3], ARGV[7], ARGV[9])
redis.call('PUBLISH', ARGV[10], 't:' .. ARGV[1])
return 1
