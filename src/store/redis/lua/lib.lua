-- Shared by every script below (prepended to each): the record header and the paged indexes.
-- A record (src/store/redis/record.rs) starts with: version byte, status byte ('a', 's', 'r'),
-- last used (Unix ms, 6 bytes big-endian), address length n, n address bytes, then the body.

local function rec_status(v)
  return string.sub(v, 2, 2)
end

local function rec_with_status(v, st)
  return string.sub(v, 1, 1) .. st .. string.sub(v, 3)
end

local function rec_last_used(v)
  return struct.unpack('>I6', v, 3)
end

local function rec_body(v)
  return string.sub(v, 10 + string.byte(v, 9))
end

local function rec_with_last_used(v, at, from)
  return string.sub(v, 1, 2) .. struct.pack('>I6', at) .. string.char(#from) .. from .. rec_body(v)
end

-- The head of the body: {kind (0 personal, 1 organization), name, owner}.
local function rec_head(v)
  local _, head = cmsgpack.unpack_one(rec_body(v))
  return head
end

-- A paged index is a directory zset and leaf zsets of at most ARGV-given capacity entries (so
-- they stay small listpacks). Leaf entries are index keys (27 bytes: created ms, 15 digits, and
-- the id), all scores 0. The first leaf holds everything below the lowest bound in the directory
-- and has no directory member; every other leaf has the member '<lower bound>/<leaf name>'.
-- The caller resolves the leaf in Rust and passes it in KEYS; scripts re-check it here.

-- The directory member of the leaf that holds `key` ('' for the first leaf).
local function leaf_of(dir, key)
  return redis.call('ZRANGE', dir, '(' .. key .. '0', '-', 'BYLEX', 'REV', 'LIMIT', 0, 1)[1] or ''
end

-- Adds `key` to `leaf`. A full leaf splits first: when `key` is above all its entries, `key` alone
-- starts the new leaf `fresh` (appends keep leaves full); otherwise the upper half moves there.
-- `fresh` is named after `key`, which is never inserted twice, so the name is new.
local function index_add(dir, leaf, fresh, key, cap)
  local n = redis.call('ZCARD', leaf)
  if n < cap then
    redis.call('ZADD', leaf, 0, key)
    return
  end
  if redis.call('ZLEXCOUNT', leaf, '(' .. key, '+') == 0 then
    redis.call('ZADD', fresh, 0, key)
    redis.call('ZADD', dir, 0, key .. '/' .. key)
    return
  end
  local half = math.floor(n / 2)
  local upper = redis.call('ZRANGE', leaf, half, -1)
  redis.call('ZREMRANGEBYRANK', leaf, half, -1)
  local args = {}
  for i, m in ipairs(upper) do
    args[2 * i - 1] = 0
    args[2 * i] = m
  end
  redis.call('ZADD', fresh, unpack(args))
  redis.call('ZADD', dir, 0, upper[1] .. '/' .. key)
  if redis.call('ZLEXCOUNT', fresh, '-', '(' .. key) == 0 then
    redis.call('ZADD', leaf, 0, key)
  else
    redis.call('ZADD', fresh, 0, key)
  end
end

-- Removes `key` from `leaf` (whose directory member is `member`); an emptied leaf other than the
-- first leaves the directory.
local function index_remove(dir, leaf, member, key)
  redis.call('ZREM', leaf, key)
  if member ~= '' and redis.call('EXISTS', leaf) == 0 then
    redis.call('ZREM', dir, member)
  end
end

-- Appends an audit event and trims the list.
local function audit(list, event, limit)
  redis.call('LPUSH', list, event)
  redis.call('LTRIM', list, 0, tonumber(limit) - 1)
end
