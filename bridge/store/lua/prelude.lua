-- Shared by every script. ARGV[1] is the key prefix; a script's own arguments start at
-- ARGV[2]. NOW (epoch ms) is Redis's own clock, never a caller's: every due time, lease,
-- rate-limit slot, circuit deadline, quiet time and receipt time is on this one clock, so
-- hosts whose clocks disagree cannot delay or reorder each other's work (scripts replicate
-- by their effects, so reading TIME before a write is allowed). VERSION_LEN is defined above
-- this file by bridge/store/scripts.py from bridge.changes.VERSION_LEN (one definition for
-- both sides), and HIGH_WATER_TTL_MS from bridge.store.keys.
local P = ARGV[1]
-- the shard this call runs in, when the layout is sharded: its prefix is '{cb.<i>.<salt>}:'
-- (bridge/store/shards.py); nil for the one-shard layout
local SHARD = string.match(P, '^{cb%.(%d+)%.')
local CLOCK = redis.call('TIME')
local NOW = tonumber(CLOCK[1]) * 1000 + math.floor(tonumber(CLOCK[2]) / 1000)

-- the version part of a change entry: newer is a plain string comparison
local function version_of(entry)
  return string.sub(entry, 1, VERSION_LEN)
end

-- redis.call(cmd, key, list...) in slices of at most 1000 arguments (unpack is bounded by
-- Lua's stack: a PATCH may carry tens of thousands of tags); table answers (HMGET) joined,
-- and the last slice's answer as well (LPUSH: the list's length after the whole push)
local function call_many(cmd, key, list)
  local out, got = {}, nil
  for i = 1, #list, 1000 do
    got = redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list)))
    if type(got) == 'table' then
      for _, v in ipairs(got) do out[#out + 1] = v end
    end
  end
  return out, got
end

-- the whole-list field a per-item change belongs to: a tag to tags, a handoff step to
-- handoffHistory (nil for anything else)
local function whole_of(name)
  local kind = string.sub(name, 1, 2)
  if kind == 't:' then return 'f:tags' end
  if kind == 'h:' then return 'f:handoffHistory' end
  return nil
end

-- sets hash[name] = entry when it is newer than what is there and than the applied entry in
-- hwkey (nil: no high-water mark to respect); 1 when it did. A tag or handoff change older
-- than a whole list (applied or pending) is gone: the list, as of its time, already says it.
-- times (optional): set to {_t, _q} of hwkey as read here, for schedule (the caller knows
-- hwkey is not written in between)
local function merge_into(hash, hwkey, name, entry, times)
  local ver = version_of(entry)
  local whole = hwkey and whole_of(name)
  if hwkey then
    local hw
    if whole then
      hw = redis.call('HMGET', hwkey, name, '_t', '_q', whole)
    else
      hw = redis.call('HMGET', hwkey, name, '_t', '_q')
    end
    if times then times[1], times[2] = hw[2], hw[3] end
    if hw[1] and version_of(hw[1]) >= ver then return 0 end
    if whole and hw[4] and version_of(hw[4]) >= ver then return 0 end
  end
  local cur
  if whole then
    cur = redis.call('HMGET', hash, name, whole)
    if cur[2] and version_of(cur[2]) >= ver then return 0 end
    cur = cur[1]
  else
    cur = redis.call('HGET', hash, name)
  end
  if cur and version_of(cur) >= ver then return 0 end
  redis.call('HSET', hash, name, entry)
  return 1
end

local function merge(ck, name, entry, times)
  return merge_into(P .. 'p:' .. ck, P .. 'hw:' .. ck, name, entry, times)
end

-- hw:<ck> lives HIGH_WATER_TTL_MS after its last write, and for ever while the conversation
-- has dead letters (`_dl`): a replay must still meet the newer values it may not overwrite
-- (has_dl: whether it has `_dl`, when the caller has just read it)
local function keep_hw(ck, has_dl)
  local hwk = P .. 'hw:' .. ck
  if has_dl == nil then has_dl = redis.call('HEXISTS', hwk, '_dl') == 1 end
  if has_dl then
    redis.call('PERSIST', hwk)
  else
    redis.call('PEXPIRE', hwk, HIGH_WATER_TTL_MS)
  end
end

-- (at most 64 wakes wait in the list: while the workers are all busy, a wake finds it full
-- and writes nothing). Sharded, no worker can block on every shard's list: the wake is
-- published, naming the shard
local function wake()
  if SHARD then
    redis.call('PUBLISH', WAKE_CHANNEL, SHARD)
  elseif redis.call('LLEN', P .. 'wake') < 64 then
    redis.call('LPUSH', P .. 'wake', '1')
  end
end

-- a conversation was just added to `due`, due at `at`: wake an idle worker when it is due
-- now, or when it is the new head (nothing due sooner). An idle worker waits until the head
-- it last saw is due, so the one woken learns of the sooner time; no worker polls for it
local function added_due(at)
  if at <= NOW or redis.call('ZCOUNT', P .. 'due', '-inf', string.format('(%d', at)) == 0 then wake() end
end

-- makes a conversation with pending changes due, no sooner than `coalesce` ms after its last
-- PATCH nor before its quiet time (`_q`, after an in-doubt PATCH); a conversation held by a
-- worker is scheduled again when that worker settles. times: {_t, _q} of hw:<ck> when the
-- caller has them (merge_into), else read here
local function schedule(ck, coalesce, times)
  if redis.call('ZSCORE', P .. 'inflight', ck) then return end
  local hw = times or redis.call('HMGET', P .. 'hw:' .. ck, '_t', '_q')
  local due = math.max(NOW, tonumber(hw[1] or '0') + coalesce, tonumber(hw[2] or '0'))
  -- wake idle workers only when this added the conversation to `due`: if it was already
  -- there, a wake went out then (or it waits for a later time the workers know)
  if redis.call('ZADD', P .. 'due', 'NX', due, ck) == 1 then added_due(due) end
end

-- a replayed dead letter's changes back into its conversation, [name, entry, ...]: newest
-- wins against pending and applied, and the conversation is due if anything is pending
local function merge_back(ck, entries, coalesce)
  for i = 1, #entries, 2 do merge(ck, entries[i], entries[i + 1]) end
  if redis.call('HLEN', P .. 'p:' .. ck) > 0 then schedule(ck, coalesce) end
end

-- an in-doubt PATCH may still be applied: nothing more goes to this conversation for
-- `quiet` ms, so whatever follows lands after it; the arrays the bridge last saw may no
-- longer be the target's, so the next PATCH that rewrites one reads it again
local function hold_quiet(ck, quiet)
  local till = NOW + quiet
  redis.call('DEL', P .. 'arr:' .. ck)
  local hwk = P .. 'hw:' .. ck
  if tonumber(redis.call('HGET', hwk, '_q') or '0') < till then
    redis.call('HSET', hwk, '_q', till)
    keep_hw(ck)
  end
  local due = redis.call('ZSCORE', P .. 'due', ck)
  if due and tonumber(due) < till then redis.call('ZADD', P .. 'due', 'XX', till, ck) end
  return till
end

-- recent-rate counters for `status`, in 10 s buckets
local function count(what, n)
  if n > 0 then
    local k = P .. 'r:' .. what .. ':' .. math.floor(NOW / 10000)
    if redis.call('INCRBY', k, n) == n then redis.call('EXPIRE', k, 130) end
  end
end
