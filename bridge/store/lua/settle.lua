-- settle: record what attempts did; several workers' settles share one call.
-- Includes: prelude, dead, circuit, eventlog.
-- Arguments by name, each side written from one definition (bridge/store/records.py):
-- ARGV[2] a JSON object, SettleOptions: coalesce_ms, array_cache_ms, circuit_window,
--   circuit_failure_permille, circuit_cooldown_ms, in_doubt_quiet_ms, log_max_events,
--   log_keep_ms;
-- ARGV[3] a JSON array of settles, each a JSON object, SettleRow: ck, token, outcome
--   (ok|retry|dead|release|wait: held back by its account's gate, no attempt), arrays (JSON or ''), attempt (JSON), retry_in_ms, reason,
--   status, snippet, circuit (ok|fail|''), sent ([name, entry, ...]), in_doubt (true: a
--   PATCH left and its fate is unknown), log (the attempt's event-log row, eventlog.lua's
--   [0, 0, verdict, field, value, ...], or []: written here with the dead-letter id this
--   settle made as its `dl`) and log_blob (its `d` field is ARGV[3 + log_blob]).
-- Returns each settle's dead-letter id ('' when none).
local opt = cjson.decode(ARGV[2])
local coalesce, arr_ttl = opt.coalesce_ms, opt.array_cache_ms
local window, ratio = opt.circuit_window, opt.circuit_failure_permille
local cooldown, quiet = opt.circuit_cooldown_ms, opt.in_doubt_quiet_ms

-- after a whole list is applied, older single tag / handoff changes can never matter again
local function prune(hwk, kind, whole_version)
  local all, gone = redis.call('HGETALL', hwk), {}
  for j = 1, #all, 2 do
    if string.sub(all[j], 1, 2) == kind and version_of(all[j + 1]) < whole_version then
      gone[#gone + 1] = all[j]
    end
  end
  call_many('HDEL', hwk, gone)
end

-- what was sent is applied: drop it from pending unless overtaken, and keep each newest
-- applied entry in hw:<ck> (a replay or a re-send after an in-doubt PATCH needs it). The
-- reads are one HMGET per hash (with hw's `_dl` for keep_hw), the writes one HDEL and one
-- HSET; `sent` names each field once (they are a pending hash's fields).
local function applied(ck, arrays, sent)
  local pk, hwk = P .. 'p:' .. ck, P .. 'hw:' .. ck
  local names, hwnames = {}, {'_dl'}
  for j = 1, #sent, 2 do
    names[#names + 1] = sent[j]
    if string.sub(sent[j], 1, 2) ~= 'r:' then hwnames[#hwnames + 1] = sent[j] end
  end
  local cur = call_many('HMGET', pk, names)
  local hwv = call_many('HMGET', hwk, hwnames)
  local has_dl = hwv[1] ~= false
  local newest = {}
  for i = 2, #hwnames do newest[hwnames[i]] = hwv[i] end
  local drop, set, wholes = {}, {}, {}
  for j = 1, #sent, 2 do
    local name, raw = sent[j], sent[j + 1]
    if cur[(j + 1) / 2] == raw then drop[#drop + 1] = name end
    if string.sub(name, 1, 2) ~= 'r:' then
      local hw = newest[name]
      if not hw or version_of(raw) > version_of(hw) then
        newest[name] = raw
        set[#set + 1] = name
        set[#set + 1] = raw
        if name == 'f:tags' then wholes['t:'] = version_of(raw) end
        if name == 'f:handoffHistory' then wholes['h:'] = version_of(raw) end
      end
    end
  end
  call_many('HDEL', pk, drop)
  set[#set + 1] = '_t'
  set[#set + 1] = NOW
  call_many('HSET', hwk, set)
  for kind, v in pairs(wholes) do prune(hwk, kind, v) end
  keep_hw(ck, has_dl)
  if arrays ~= '' then redis.call('SET', P .. 'arr:' .. ck, arrays, 'PX', arr_ttl) end
end

-- a PATCH that may have landed after this worker lost its lease (so after newer ones):
-- every field it carried is sent again at its newest value, pending or applied. A re-send
-- is a pending `r:<field>` entry (`r:tags` / `r:handoffHistory` for the arrays), its value
-- a unique marker, so only a worker that took this very marker clears it.
local function redo(ck, sent)
  local pk = P .. 'p:' .. ck
  local seq = redis.call('HINCRBY', P .. 'hw:' .. ck, '_rs', 1)
  local marker = string.format('%015d%012d', NOW, seq) .. '\nbridge\nredo\n0\nnull'
  for j = 1, #sent, 2 do
    local name, target = sent[j], nil
    local kind = string.sub(name, 1, 2)
    if kind == 'r:' then target = name
    elseif kind == 't:' or name == 'f:tags' then target = 'r:tags'
    elseif kind == 'h:' or name == 'f:handoffHistory' then target = 'r:handoffHistory'
    else target = 'r:' .. name end
    redis.call('HSET', pk, target, marker)
  end
  redis.call('DEL', P .. 'arr:' .. ck)  -- the target's arrays may now be the late PATCH's
  keep_hw(ck)
end

-- what the call's settles add up to, written once after them: the `ok` and `fail` counters,
-- and the attempts' verdicts for the circuit, in order
local oks, fails, verdicts = 0, 0, {}

local function settle(s)
  local ck, token, outcome, sent = s.ck, s.token, s.outcome, s.sent
  local retry_at = NOW + s.retry_in_ms
  local owned = redis.call('GET', P .. 'lease:' .. ck) == token
  if owned then
    if outcome == 'ok' then  -- applied: its attempts go too (one DEL, one conversation's keys)
      redis.call('DEL', P .. 'lease:' .. ck, P .. 'att:' .. ck)
    else
      redis.call('DEL', P .. 'lease:' .. ck)
    end
    redis.call('ZREM', P .. 'inflight', ck)
  end
  local dead_id = ''
  if outcome == 'ok' then
    if owned then
      applied(ck, s.arrays, sent)
      oks = oks + 1
    else
      redo(ck, sent)
    end
  elseif outcome == 'retry' or outcome == 'dead' then
    -- a failed attempt is recorded only by the lease holder: when the lease is gone (expired
    -- and taken over, or this very settle already ran and is repeated after a lost answer)
    -- recording it would double the attempt or dead-letter newer changes
    if owned then
      redis.call('RPUSH', P .. 'att:' .. ck, s.attempt)
      if outcome == 'dead' then
        dead_id = dead_letter_pending(ck, s.reason, s.status, s.snippet)
      end
    end
    fails = fails + 1
  end
  if s.in_doubt then
    if not owned and outcome ~= 'ok' then redo(ck, sent) end
    retry_at = math.max(retry_at, hold_quiet(ck, quiet))
  end
  if owned or redis.call('EXISTS', P .. 'lease:' .. ck) == 0 then
    if outcome == 'retry' or outcome == 'wait' then
      -- CH: added, or moved (already back in `due`, swept, when this settle is late)
      if redis.call('ZADD', P .. 'due', 'CH', retry_at, ck) == 1 then added_due(retry_at) end
    elseif redis.call('HLEN', P .. 'p:' .. ck) > 0 then
      redis.call('ZREM', P .. 'inflight', ck)
      schedule(ck, coalesce)
    end
  end
  if s.circuit ~= '' then verdicts[#verdicts + 1] = s.circuit end
  return dead_id
end

local out, logged = {}, {}
for i, s in ipairs(cjson.decode(ARGV[3])) do
  out[i] = settle(s)
  local row = s.log
  if #row > 0 then
    for j = 4, #row, 2 do
      if row[j] == 'dl' and out[i] ~= '' then row[j + 1] = out[i] end
    end
    logged[s.log_blob] = row
  end
end
count('ok', oks)
count('fail', fails)
circuit_record_all(P, verdicts, window, ratio, cooldown)
if #logged > 0 then log_entries(opt.log_max_events, opt.log_keep_ms, logged, {}, 4, nil) end
return out
