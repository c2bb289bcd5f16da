-- Dead letters: create, drop, and replay through newest-wins. Needs prelude.lua.
-- RQ's keys are touched only when RQ shares this Redis (the caller then declares RQ's
-- failed-job registry as KEYS[2]); on a Redis of its own rq_mirror.py drops the job there.
local RQ_HERE = KEYS[2] ~= nil

-- ext is the external id's key form (shown unescaped); raw, for an unroutable letter, the id
-- as the sender gave it, which its link is stored under
local function new_dead(reason, ck, source, ext, status, snippet, raw)
  local id = tostring(NOW) .. '-' .. redis.call('INCR', P .. 'dlseq')
  if SHARD then id = id .. '-s' .. SHARD end  -- its shard, for those who look it up
  local fields = {'id', id, 'reason', reason, 'ck', ck, 'source', source, 'external_id', ext,
    'created', NOW, 'last_status', status, 'last_snippet', snippet}
  if raw then
    fields[#fields + 1] = 'ext'
    fields[#fields + 1] = raw
  end
  redis.call('HSET', P .. 'dl:' .. id, unpack(fields))
  redis.call('ZADD', P .. 'dlq', NOW, id)
  redis.call('HINCRBY', P .. 'dlr', reason, 1)
  if ck ~= '' then
    redis.call('HINCRBY', P .. 'hw:' .. ck, '_dl', 1)
    keep_hw(ck)
  end
  redis.call('RPUSH', P .. 'rqnew', id)  -- its RQ failed job is made by rq_mirror.py
  count('dead', 1)
  return id
end

local function drop_dead(id)
  local rec = redis.call('HMGET', P .. 'dl:' .. id, 'reason', 'source', 'external_id', 'ck')
  if not rec[1] then return end
  if rec[4] == '' then
    redis.call('DEL', P .. 'ux:' .. rec[2] .. ':' .. rec[3])
  elseif redis.call('HINCRBY', P .. 'hw:' .. rec[4], '_dl', -1) <= 0 then
    redis.call('HDEL', P .. 'hw:' .. rec[4], '_dl')
    keep_hw(rec[4])
  end
  redis.call('DEL', P .. 'dl:' .. id, P .. 'dle:' .. id, P .. 'dla:' .. id)
  redis.call('ZREM', P .. 'dlq', id)
  -- its RQ failed job goes with it; a requeued or running one is left to finish (RQ on a
  -- Redis of its own: rq_mirror.py deletes it from there, listed in rqgone)
  if RQ_HERE then
    if redis.call('HGET', RQ_JOB .. id, 'status') == 'failed' then
      redis.call('DEL', RQ_JOB .. id, RQ_RESULTS .. id)
    end
    redis.call('ZREM', RQ_FAILED, id)
  end
  redis.call('RPUSH', P .. 'rqgone', id)
  if redis.call('HINCRBY', P .. 'dlr', rec[1], -1) <= 0 then redis.call('HDEL', P .. 'dlr', rec[1]) end
end

-- moves a held conversation's pending changes and attempts into a new dead letter
local function dead_letter_pending(ck, reason, status, snippet)
  local id = new_dead(reason, ck, '', '', status, snippet)
  local entries = redis.call('HGETALL', P .. 'p:' .. ck)
  for j = 1, #entries, 2 do
    redis.call('HSET', P .. 'dle:' .. id, entries[j], entries[j + 1])
  end
  redis.call('DEL', P .. 'p:' .. ck)
  redis.call('RENAME', P .. 'att:' .. ck, P .. 'dla:' .. id)
  return id
end

-- merges a dead letter's changes back (newest wins against pending and applied) and drops it:
-- 'replayed', 'unroutable' (still no link) or 'missing'; sharded, an unroutable letter whose
-- link is now set is 'linked': its conversation may live in another shard, so the caller
-- merges it there (merge.lua) and then drops it here (purge.lua)
local function replay(id, coalesce)
  local rec = redis.call('HMGET', P .. 'dl:' .. id, 'ck', 'source', 'external_id', 'ext')
  if not rec[2] then return 'missing' end
  local ck = rec[1]
  if ck == '' then
    -- links are stored under the id as sent (`ext`; a letter from before it was kept has
    -- only the key form, the same for ids with nothing to escape)
    ck = redis.call('HGET', P .. 'links:' .. rec[2], rec[4] or rec[3])
    if not ck then return 'unroutable' end
    if SHARD then return 'linked' end
  end
  merge_back(ck, redis.call('HGETALL', P .. 'dle:' .. id), coalesce)
  drop_dead(id)
  return 'replayed'
end
