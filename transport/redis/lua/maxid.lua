#!lua
-- Raises KEYS[1], the highest id appended on this Redis, to ARGV[1] (20
-- digits, so that comparing strings compares ids).
local cur = redis.call('GET', KEYS[1])
if not cur or ARGV[1] > cur then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
