#!lua flags=no-writes
-- Walks one room and topic's history in id order and returns the records a
-- query may see: a history page, or the keyed messages of a KeyStore.
--
-- KEYS[1] the topic's sorted set of ids
-- KEYS[2] the topic's hash: id -> record
-- ARGV[1] 'b' back from the anchor, 'f' forward from it, 'k' back from the
--         newest for keyed records
-- ARGV[2] the anchor, an id excluded from the walk; '' for the newest end
--         ('b', 'k') or the oldest ('f')
-- ARGV[3] how many records to return
-- ARGV[4] a timestamp key: records stamped before it are expired (not
--         returned; for 'k', they end the walk)
-- ARGV[5] the most records to read in this call
-- ARGV[6] the viewer: records addressed with To only to others are skipped
-- ARGV[7] '1' when ARGV[8..] are the only senders to return, '0' for all
-- ARGV[8..] the senders
--
-- Returns {done, cursor, id, record, id, record, ...} in walk order: done
-- is 1 when the walk is over (enough records, or the end), 0 when it read
-- ARGV[5] records first; then it goes on from cursor, the last id read.

local mode, anchor = ARGV[1], ARGV[2]
local want, cutoff, budget = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local viewer = ARGV[6]
local senders = nil
if ARGV[7] == '1' then
  senders = {}
  for i = 8, #ARGV do
    senders[ARGV[i]] = true
  end
end

-- field reads a <length>:<bytes> field of s at pos.
local function field(s, pos)
  local c = string.find(s, ':', pos, true)
  local n = tonumber(string.sub(s, pos, c - 1))
  return string.sub(s, c + 1, c + n), c + 1 + n
end

-- check returns whether rec is returned, and whether it ends the walk.
local function check(rec)
  if string.sub(rec, 3, 22) < cutoff then
    return false, mode == 'k'
  end
  local from, pos = field(rec, 23)
  if senders and not senders[from] then
    return false, false
  end
  local key
  key, pos = field(rec, pos)
  if mode == 'k' then
    return key ~= '', false
  end
  local c = string.find(rec, ':', pos, true)
  local n = tonumber(string.sub(rec, pos, c - 1))
  pos = c + 1
  if n == 0 or from == viewer then
    return true, false
  end
  for _ = 1, n do
    local to
    to, pos = field(rec, pos)
    if to == viewer then
      return true, false
    end
  end
  return false, false
end

local out = {1, ''}
local got, read, cur = 0, 0, anchor
local batch = 64
while read < budget do
  local ids
  if mode == 'f' then
    local min = '-'
    if cur ~= '' then min = '(' .. cur end
    ids = redis.call('ZRANGE', KEYS[1], min, '+', 'BYLEX', 'LIMIT', 0, batch)
  else
    local max = '+'
    if cur ~= '' then max = '(' .. cur end
    ids = redis.call('ZRANGE', KEYS[1], max, '-', 'BYLEX', 'REV', 'LIMIT', 0, batch)
  end
  if #ids == 0 then
    return out
  end
  local recs = redis.call('HMGET', KEYS[2], unpack(ids))
  for i = 1, #ids do
    read = read + 1
    cur = ids[i]
    local rec = recs[i]
    if rec then
      local ok, stop = check(rec)
      if stop then
        return out
      end
      if ok then
        out[#out + 1] = cur
        out[#out + 1] = rec
        got = got + 1
        if got >= want then
          return out
        end
      end
    end
  end
  if #ids < batch then
    return out
  end
end
out[1] = 0
out[2] = cur
return out
