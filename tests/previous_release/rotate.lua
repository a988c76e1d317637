-- Replace a token's record (new secret digest) if nobody changed it since it was read
-- (compare-and-set: the record changes only on rotation, so a change means another rotation won).
-- KEYS: token hash, audit list
-- ARGV: record as read, new record, audit event JSON, audit limit, channel, invalidation message
-- Returns {'ok'}, {'missing'}, {'revoked'} or {'changed'} (the record changed meanwhile).
local st = redis.call('HGET', KEYS[1], 'st')
if not st then
  return {'missing'}
end
if st == 'revoked' then
  return {'revoked'}
end
if redis.call('HGET', KEYS[1], 'rec') ~= ARGV[1] then
  return {'changed'}
end
redis.call('HSET', KEYS[1], 'rec', ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
redis.call('PUBLISH', ARGV[5], ARGV[6])
return {'ok'}
