#!lua
-- Creates, uses, peeks at or releases a temporary client socket. Both keys
-- share the room's hash tag.
--
-- KEYS[1] the room's sorted set of usable sockets: hash -> expiry (ms)
-- KEYS[2] the socket's hash
-- ARGV[1] 'create', 'use', 'peek' or 'release'
-- ARGV[2] now, Unix ms
-- create: ARGV[3] the room's cap, ARGV[4] expiry (Unix ms), ARGV[5] how
--         long to keep the socket after its expiry (ms), ARGV[6] the
--         socket's name in KEYS[1], ARGV[7..] field, value pairs
--
-- Returns {'ok', field, value, ...} (create: {'ok'}), {'full', n},
-- {'invalid'}, {'exhausted'} or {'expired'}.
local op, now = ARGV[1], tonumber(ARGV[2])
if op == 'create' then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  local n = redis.call('ZCARD', KEYS[1])
  if n >= tonumber(ARGV[3]) then
    return {'full', n}
  end
  local fields = {}
  for i = 7, #ARGV do
    fields[#fields + 1] = ARGV[i]
  end
  redis.call('HSET', KEYS[2], unpack(fields))
  local keep = tonumber(ARGV[4]) + tonumber(ARGV[5])
  redis.call('PEXPIREAT', KEYS[2], keep)
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[6])
  if redis.call('PEXPIRETIME', KEYS[1]) < keep then
    redis.call('PEXPIREAT', KEYS[1], keep)
  end
  return {'ok'}
end

local f = redis.call('HMGET', KEYS[2], 'expires', 'maxUses', 'uses', 'name')
if not f[1] then
  return {'invalid'}
end
local expires, maxUses, uses = tonumber(f[1]), tonumber(f[2]), tonumber(f[3])
if op == 'release' then
  if uses > 0 then
    redis.call('HINCRBY', KEYS[2], 'uses', -1)
    if now < expires then
      redis.call('ZADD', KEYS[1], expires, f[4])
    end
  end
  return {'ok'}
end
if maxUses > 0 and uses >= maxUses then
  return {'exhausted'}
end
if now >= expires then
  return {'expired'}
end
if op == 'use' then
  uses = redis.call('HINCRBY', KEYS[2], 'uses', 1)
  if maxUses > 0 and uses >= maxUses then
    redis.call('ZREM', KEYS[1], f[4]) -- used up: no longer counts against the room
  end
end
local out = redis.call('HGETALL', KEYS[2])
table.insert(out, 1, 'ok')
return out
