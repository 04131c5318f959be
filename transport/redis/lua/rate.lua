#!lua
-- Takes one event from a rolling-minute window, as internal/ratewindow
-- does in one process: 60 one-second buckets, an event at second s counts
-- until second s+60 begins.
--
-- KEYS[1] the window's hash: Unix second -> events
-- ARGV[1] now, in Unix seconds
-- ARGV[2] the limit
--
-- Returns {1, 0} when the event fits (and counts it), {0, s} when it does
-- not, s being the second whose events leaving the window make room (or
-- {0, 'none'} for a limit of zero or less).
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local all = redis.call('HGETALL', KEYS[1])
local n, live, old = 0, {}, {}
for i = 1, #all, 2 do
  local s, c = tonumber(all[i]), tonumber(all[i + 1])
  if s > now - 60 then
    n = n + c
    live[#live + 1] = {s, c}
  else
    old[#old + 1] = all[i]
  end
end
if #old > 0 then
  redis.call('HDEL', KEYS[1], unpack(old))
end
if n < limit then
  redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
  redis.call('PEXPIRE', KEYS[1], 61000)
  return {1, 0}
end
table.sort(live, function(a, b) return a[1] < b[1] end)
for _, b in ipairs(live) do
  n = n - b[2]
  if n < limit then
    return {0, b[1]}
  end
end
return {0, 'none'}
