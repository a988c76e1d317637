-- Replace a token's body (new secret digest) if nobody changed it since it was read
-- (compare-and-set: the body changes only on rotation, so a change means another rotation won).
-- KEYS: record bucket, audit list
-- ARGV: id, body as read, new body, audit event JSON, audit limit, channel, invalidation message
-- Returns {'ok'}, {'missing'}, {'revoked'} or {'changed'} (the body changed meanwhile).
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then
  return {'missing'}
end
if rec_status(v) == 'r' then
  return {'revoked'}
end
local body = rec_body(v)
if body ~= ARGV[2] then
  return {'changed'}
end
redis.call('HSET', KEYS[1], ARGV[1], string.sub(v, 1, #v - #body) .. ARGV[3])
audit(KEYS[2], ARGV[4], ARGV[5])
redis.call('PUBLISH', ARGV[6], ARGV[7])
return {'ok'}
