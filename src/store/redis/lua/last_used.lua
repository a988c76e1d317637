-- Move last-used forward, never back. Missing tokens are skipped; a token still in the previous
-- release's format (its hash in KEYS, after the buckets) is updated there.
-- KEYS: the record buckets of the uses, then the previous release's token hash of each use
-- ARGV: number of buckets b, then for each use: its bucket's position in KEYS, id, use time in
--       Unix ms, client address ('' when unknown)
-- Returns how many records moved.
local b = tonumber(ARGV[1])
local moved = 0
local uses = (#ARGV - 1) / 4
for i = 1, uses do
  local bucket = KEYS[tonumber(ARGV[4 * i - 2])]
  local id, at, from = ARGV[4 * i - 1], tonumber(ARGV[4 * i]), ARGV[4 * i + 1]
  local v = redis.call('HGET', bucket, id)
  if v then
    if rec_last_used(v) < at then
      redis.call('HSET', bucket, id, rec_with_last_used(v, at, from))
      moved = moved + 1
    end
  else
    local legacy = KEYS[b + i]
    if redis.call('EXISTS', legacy) == 1 then
      local current = tonumber(redis.call('HGET', legacy, 'lu') or '-1')
      if current < at then
        redis.call('HSET', legacy, 'lu', ARGV[4 * i], 'lf', from)
        moved = moved + 1
      end
    end
  end
end
return moved
