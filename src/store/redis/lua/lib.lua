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

-- A paged index is a directory zset and leaf zsets of at most `cap` entries (so they stay small
-- listpacks). Leaf entries are index keys (19 bytes: created ms as 7 bytes big-endian, then the
-- id), all scores 0. The first leaf holds everything below the lowest bound in the directory and
-- has no directory member; every other leaf has the member '<lower bound>/<leaf name>'. The
-- caller resolves the leaf in Rust and passes it in KEYS; scripts re-check it here.

-- The directory member of the leaf that holds `key` ('' for the first leaf).
local function leaf_of(dir, key)
  return redis.call('ZRANGE', dir, '(' .. key .. '0', '-', 'BYLEX', 'REV', 'LIMIT', 0, 1)[1] or ''
end

-- Adds `key` to `leaf`. A full leaf splits first, into the new leaf `fresh` named `name` (the
-- inserted key's cursor: never inserted twice, so the name is new). When `key` falls in the
-- upper half, the keys above it move to `fresh` and `key` starts it (so appends, in order or
-- nearly, leave full leaves behind); otherwise the upper half moves there.
local function index_add(dir, leaf, fresh, key, name, cap)
  local n = redis.call('ZCARD', leaf)
  if n < cap then
    redis.call('ZADD', leaf, 0, key)
    return
  end
  local below = redis.call('ZLEXCOUNT', leaf, '-', '(' .. key)
  local from = below
  if below < n / 2 then
    from = math.floor(n / 2)
  end
  local moved = redis.call('ZRANGE', leaf, from, -1)
  local args = {}
  for i, m in ipairs(moved) do
    args[2 * i - 1] = 0
    args[2 * i] = m
  end
  if #moved > 0 then
    redis.call('ZREMRANGEBYRANK', leaf, from, -1)
    redis.call('ZADD', fresh, unpack(args))
  end
  if below >= n / 2 then
    redis.call('ZADD', fresh, 0, key)
    redis.call('ZADD', dir, 0, key .. '/' .. name)
  else
    redis.call('ZADD', dir, 0, moved[1] .. '/' .. name)
    redis.call('ZADD', leaf, 0, key)
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
