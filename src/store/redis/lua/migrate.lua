-- Move one token from the previous release's format to this one: its record into its bucket,
-- its index key from the old sorted sets into the paged indexes, its old hash deleted. Only if
-- the old hash is still exactly as read (compare-and-set), so no concurrent change is lost.
-- KEYS: the previous release's token hash, global index, owner index; record bucket, global
--       index directory, leaf, fresh leaf, owner index directory, leaf, fresh leaf
-- ARGV: id, index key in the old indexes (its cursor, which also names a leaf that a split
--       creates), old fields as read ('' for none): rec, st, lu, lf; new record, global leaf
--       member, owner leaf member, leaf capacity, index key in the paged indexes
-- Returns {'ok'} (also when it was migrated already), {'missing'}, {'changed'} (read it again)
-- or {'moved'} (a leaf split meanwhile: resolve the leaves again).
if redis.call('HEXISTS', KEYS[4], ARGV[1]) == 1 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('ZREM', KEYS[3], ARGV[2])
  return {'ok'}
end
local old = redis.call('HMGET', KEYS[1], 'rec', 'st', 'lu', 'lf')
if not old[1] then
  return {'missing'}
end
for i = 1, 4 do
  if (old[i] or '') ~= ARGV[2 + i] then
    return {'changed'}
  end
end
local key = ARGV[11]
if leaf_of(KEYS[5], key) ~= ARGV[8] or leaf_of(KEYS[8], key) ~= ARGV[9] then
  return {'moved'}
end
local cap = tonumber(ARGV[10])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[7])
index_add(KEYS[5], KEYS[6], KEYS[7], key, ARGV[2], cap)
index_add(KEYS[8], KEYS[9], KEYS[10], key, ARGV[2], cap)
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
return {'ok'}
