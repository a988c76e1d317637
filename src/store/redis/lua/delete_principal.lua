-- Delete a principal and revoke their personal tokens that are not revoked yet, each audited
-- and invalidated. The caller read the owner index and passes its leaves and the record buckets
-- of its tokens; this re-checks both and answers -1 when they changed meanwhile.
-- KEYS: principal key, audit list, owner index directory, the previous release's owner index,
--       the principal index, the owner index's leaves (as many as ARGV[5]), then record buckets
-- ARGV: principal id, audit event JSON without its closing brace, token id, token name and
--       owner, audit limit, channel, number of leaves, the directory as read (members joined by
--       ','), bucket key prefix, id characters that name a bucket
-- Returns 1, 0 (and changes nothing) when the principal does not exist, or -1 (and changes
-- nothing) when the index changed since it was read or holds tokens of the previous release.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  return -1
end
if table.concat(redis.call('ZRANGE', KEYS[3], 0, -1), ',') ~= ARGV[6] then
  return -1
end
local leaves = tonumber(ARGV[5])
local buckets = {}
for i = 6 + leaves, #KEYS do
  buckets[KEYS[i]] = true
end
local tokens = {}
for i = 6, 5 + leaves do
  for _, member in ipairs(redis.call('ZRANGE', KEYS[i], 0, -1)) do
    local id = string.sub(member, 8)
    local bucket = ARGV[7] .. string.sub(id, 1, tonumber(ARGV[8]))
    if not buckets[bucket] then
      return -1
    end
    tokens[#tokens + 1] = {bucket, id}
  end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[5], ARGV[1])
for _, t in ipairs(tokens) do
  local bucket, id = t[1], t[2]
  local v = redis.call('HGET', bucket, id)
  if v and rec_status(v) ~= 'r' then
    local head = rec_head(v)
    if head[1] == 0 and head[3] == ARGV[1] then
      redis.call('HSET', bucket, id, rec_with_status(v, 'r'))
      local event = ARGV[2] .. ',"token_id":' .. cjson.encode(id) .. ',"token_name":' .. cjson.encode(head[2])
        .. ',"owner":' .. cjson.encode(head[3]) .. '}'
      redis.call('LPUSH', KEYS[2], event)
      redis.call('PUBLISH', ARGV[4], 't:' .. id)
    end
  end
end
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
redis.call('PUBLISH', ARGV[4], 'p:' .. ARGV[1])
return 1
