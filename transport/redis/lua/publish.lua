#!lua
-- Confirms one message of one room and topic, atomically: deduplicates it,
-- gives it its id, stores it, trims the topic's history and publishes it.
-- Every key shares the topic's hash tag, so the script runs on one shard.
--
-- KEYS[1] the topic's sorted set of ids (all scores 0, ids as 20 digits)
-- KEYS[2] the topic's hash: id -> record
-- KEYS[3] the topic's last id (20 digits)
-- KEYS[4] the publish's deduplication key (read only when ARGV[7] > 0)
-- ARGV[1] 'p' to publish: the id is ARGV[2] if it is above the topic's
--         last id, and otherwise nothing happens (see the returns);
--         'a' to append: the id is ARGV[2] as given (history.Store.Append)
-- ARGV[2] the proposed id, 20 digits
-- ARGV[3] the record (see codec.go)
-- ARGV[4] '1' to store the message in history, '0' not to
-- ARGV[5] the most messages the topic keeps; negative: no limit
-- ARGV[6] the retention cutoff as a timestamp key: older messages go; '' none
-- ARGV[7] how long the deduplication key lives, in ms; 0: no key
-- ARGV[8] the topic's shard channel; '' publishes nothing
-- ARGV[9] the room's pattern channel for the topic; '' none
-- ARGV[10] the publish's origin as a field, <length>:<bytes>
--
-- What goes on the channels, and under the deduplication key, is the id,
-- the origin and the record back to back.
--
-- Returns {1, id} for a new message, {0, id .. origin .. record} for a
-- duplicate, and {2, last} when a publish proposed an id at or below the
-- topic's last id: nothing was stored, and the caller proposes again above
-- last. Lua numbers are doubles, which cannot hold a snowflake exactly, so
-- ids stay 20-digit strings here, compared as strings, and the caller
-- computes the next proposal (store.go, raiseID).

local ttl = tonumber(ARGV[7])
if ttl > 0 then
  local d = redis.call('GET', KEYS[4])
  if d then
    return {0, d}
  end
end

local id = ARGV[2]
local last = redis.call('GET', KEYS[3])
if ARGV[1] == 'p' then
  if last and last >= id then
    return {2, last}
  end
  redis.call('SET', KEYS[3], id)
elseif not last or id > last then
  redis.call('SET', KEYS[3], id)
end

if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[1], 0, id)
  redis.call('HSET', KEYS[2], id, ARGV[3])
  -- Retention by count: the lowest ids go first, at most 1000 a call.
  local max = tonumber(ARGV[5])
  if max >= 0 then
    local over = redis.call('ZCARD', KEYS[1]) - max
    if over > 0 then
      local popped = redis.call('ZPOPMIN', KEYS[1], math.min(over, 1000))
      local ids = {}
      for i = 1, #popped, 2 do
        ids[#ids + 1] = popped[i]
      end
      redis.call('HDEL', KEYS[2], unpack(ids))
    end
  end
  -- Retention by age: from the oldest id while stamped before the cutoff,
  -- at most 1000 a call (queries skip the rest).
  local cutoff = ARGV[6]
  if cutoff ~= '' then
    for _ = 1, 10 do
      local ids = redis.call('ZRANGE', KEYS[1], 0, 99)
      if #ids == 0 then
        break
      end
      local recs = redis.call('HMGET', KEYS[2], unpack(ids))
      local old = {}
      for i = 1, #ids do
        if recs[i] and string.sub(recs[i], 3, 22) >= cutoff then
          break
        end
        old[#old + 1] = ids[i]
      end
      if #old > 0 then
        redis.call('ZREM', KEYS[1], unpack(old))
        redis.call('HDEL', KEYS[2], unpack(old))
      end
      if #old < #ids then
        break
      end
    end
  end
end

local msg = id .. ARGV[10] .. ARGV[3]
if ttl > 0 then
  redis.call('SET', KEYS[4], msg, 'PX', ttl)
end
if ARGV[8] ~= '' then
  redis.call('SPUBLISH', ARGV[8], msg)
end
if ARGV[9] ~= '' then
  redis.call('PUBLISH', ARGV[9], msg)
end
return {1, id}
