-- Insert a new token unless its id exists or was ever used.
-- KEYS: token hash, global index, owner index, retired ids, audit list
-- ARGV: id, record JSON, status, index key, audit event JSON, audit limit, channel
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'rec', ARGV[2], 'st', ARGV[3])
redis.call('ZADD', KEYS[2], 0, ARGV[4])
redis.call('ZADD', KEYS[3], 0, ARGV[4])
redis.call('LPUSH', KEYS[5], ARGV[5])
redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[6]) - 1)
redis.call('PUBLISH', ARGV[7], 't:' .. ARGV[1])
return 1
