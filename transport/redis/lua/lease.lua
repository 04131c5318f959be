#!lua
-- Takes, renews or releases the lease on a hub node id.
--
-- KEYS[1] the node id's lease key
-- ARGV[1] 'take', 'renew' or 'release'
-- ARGV[2] the holder's token (random per lease)
-- ARGV[3] the lease's length in ms ('take', 'renew')
--
-- Returns {1, ''} on success, {0, holder} when another holder has the key.
-- Renewing a lease that lapsed while nobody took it takes it again;
-- releasing one that another holder has leaves it alone.
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[2] then
  return {0, cur}
end
if ARGV[1] == 'release' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return {1, ''}
