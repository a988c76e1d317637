-- Delete a principal and revoke their personal tokens that are not revoked yet, each audited
-- and invalidated. Token keys are derived from the owner index (same hash tag, same slot).
-- KEYS: principal key, the principal's owner index, audit list
-- ARGV: principal id, token key prefix, audit event JSON without its closing brace, token id,
--       token name and owner, audit limit, channel
-- Returns 1, or 0 (and changes nothing) when the principal does not exist.
if redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local id = string.sub(member, 16)
  local key = ARGV[2] .. id
  local st = redis.call('HGET', key, 'st')
  if st and st ~= 'revoked' then
    local rec = cjson.decode(redis.call('HGET', key, 'rec'))
    if rec.kind == 'personal' and rec.owner == ARGV[1] then
      redis.call('HSET', key, 'st', 'revoked')
      local event = ARGV[3] .. ',"token_id":' .. cjson.encode(id) .. ',"token_name":' .. cjson.encode(rec.name)
        .. ',"owner":' .. cjson.encode(rec.owner) .. '}'
      redis.call('LPUSH', KEYS[3], event)
      redis.call('PUBLISH', ARGV[5], 't:' .. id)
    end
  end
end
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1)
redis.call('PUBLISH', ARGV[5], 'p:' .. ARGV[1])
return 1
