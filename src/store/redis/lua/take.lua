-- Take up to n permits for one token under its rate limit (GCRA, the arithmetic of
-- src/token/limits.rs) and quota, with the server's clock so every replica agrees.
-- KEYS: the token's limiter hash (fields: tat, theoretical arrival time in µs; used, requests
--       counted against the quota)
-- ARGV: interval in µs (0: no rate limit), burst, n, quota (0: no quota)
-- Returns {granted, retry after in µs, remaining at once (the smaller of the rate's and the
-- quota's), quota exhausted (0/1)}.
local interval, burst, n, quota = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local used = 0
if quota > 0 then
  used = tonumber(redis.call('HGET', KEYS[1], 'used') or '0')
  local left = quota - used
  if left <= 0 then
    return {0, 0, 0, 1}
  end
  if n > left then
    n = left
  end
end
local granted, retry, remaining = n, 0, n
if interval > 0 then
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
  local tat = tonumber(redis.call('HGET', KEYS[1], 'tat') or '0')
  if tat < now then
    tat = now
  end
  local horizon = now + interval * burst
  local room = math.floor((horizon - tat) / interval)
  if room < 0 then
    room = 0
  end
  granted = math.min(room, n)
  tat = tat + interval * granted
  remaining = math.floor((horizon - tat) / interval)
  if remaining < 0 then
    -- A limit tightened since the last permit: the arrival time lies beyond the new horizon.
    remaining = 0
  end
  if granted == 0 then
    retry = tat + interval - horizon
  end
  redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', tat))
  if quota == 0 and redis.call('HEXISTS', KEYS[1], 'used') == 0 then
    -- Past the TAT the state means "full burst", the same as no state. Quota use (kept in case
    -- a quota is set again) never expires.
    redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.floor(tat / 1000) + 1000))
  end
end
if quota > 0 then
  if granted > 0 then
    redis.call('HSET', KEYS[1], 'used', string.format('%.0f', used + granted))
  end
  local left = quota - used - granted
  if interval == 0 or left < remaining then
    remaining = left
  end
end
if remaining > 4294967295 then
  remaining = 4294967295
end
return {granted, retry, remaining, 0}
