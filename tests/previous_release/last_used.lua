-- Move last-used forward, never back. Missing tokens are skipped.
-- KEYS: token hashes
-- ARGV: for each key, the use time in Unix ms and the client address ('' when unknown)
-- Returns how many records moved.
local moved = 0
for i, key in ipairs(KEYS) do
  local at = ARGV[2 * i - 1]
  if redis.call('EXISTS', key) == 1 then
    local current = tonumber(redis.call('HGET', key, 'lu') or '-1')
    if current < tonumber(at) then
      redis.call('HSET', key, 'lu', at, 'lf', ARGV[2 * i])
      moved = moved + 1
    end
  end
end
return moved
