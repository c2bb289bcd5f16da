-- take: lease up to n due conversations to one worker, within the circuit and rate limit.
-- Includes: prelude, circuit.
-- ARGV[2] n, ARGV[3] lease (ms), ARGV[4] token, ARGV[5] rate limit (PATCHes/s, may be
--   fractional: 0.5 = one every 2 s; 0 = none). The limit is a GCRA over all workers: `rl`
--   holds the theoretical time (ms) the next take may start; up to max(1, rate) at once.
-- Returns {{{ck, token, pending (flat hash), arrays JSON or '' (also when no pending change
--            is to an array: not read then), attempts so far,
--            applied (flat: the hw:<ck> entries the composition needs)}, ...},
--          in how many ms the next conversation is due (0: now), or -1,
--          NOW: Redis's clock, from which the caller learns how far its own is off}
local n, lease, token, rate = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
-- what of hw:<ck> the composition needs besides the pending changes: the newest applied value
-- of each field to re-send (`r:<field>`), and the applied tag / handoff history when a whole
-- list is pending or the array is re-sent (it is replayed in occurred_at order). Also
-- whether any pending change is to an array (a whole list, an item, a re-send): only then
-- does the composition start from the arrays the bridge last saw (arr:<ck>), and a PATCH
-- of other fields neither reads them nor, in its settle, writes them again
local function applied_for(ck, pending)
  local fields, tags, history, arrays = {}, false, false, false
  for j = 1, #pending, 2 do
    local name = pending[j]
    local kind = string.sub(name, 1, 2)
    if name == 'f:tags' or name == 'r:tags' then tags = true
    elseif name == 'f:handoffHistory' or name == 'r:handoffHistory' then history = true
    elseif kind == 'r:' then fields[#fields + 1] = string.sub(name, 3) end
    arrays = arrays or tags or history or kind == 't:' or kind == 'h:'
  end
  local out, hwk = {}, P .. 'hw:' .. ck
  for _, name in ipairs(fields) do
    local hw = redis.call('HGET', hwk, name)
    if hw then out[#out + 1] = name; out[#out + 1] = hw end
  end
  if tags or history then
    local all = redis.call('HGETALL', hwk)
    for j = 1, #all, 2 do
      local name, kind = all[j], string.sub(all[j], 1, 2)
      if (tags and (kind == 't:' or name == 'f:tags'))
          or (history and (kind == 'h:' or name == 'f:handoffHistory')) then
        out[#out + 1] = name; out[#out + 1] = all[j + 1]
      end
    end
  end
  return out, arrays
end

-- sharded, the shared circuit is gate.lua's in shard 0 (asked before this call), and no
-- shard's own circuit is ever written: there is nothing to read here
local state, till = 'closed', 0
if not SHARD then
  n, state, till = circuit_gate(P, n, lease)
  if n == 0 then return {{}, math.max(till - NOW, 0), NOW} end
end
local interval, tat = 0, NOW
if rate > 0 then
  interval = 1000 / rate
  local burst = math.max(1, math.floor(rate))
  tat = math.max(NOW, tonumber(redis.call('GET', P .. 'rl') or '0'))
  local allowed = math.floor((NOW + burst * interval - tat) / interval)
  if allowed <= 0 then
    if state ~= 'closed' then circuit_reopen(P) end
    return {{}, math.max(math.ceil(tat - (burst - 1) * interval) - NOW, 0), NOW}
  end
  n = math.min(n, allowed)
end
local out = {}
-- the first n + 1 of `due` with their times: those due now (at most n) are taken, and the
-- first one left is the next due (one read for both)
local head = redis.call('ZRANGE', P .. 'due', 0, n, 'WITHSCORES')
local cks, nxt = {}, nil
for j = 1, #head, 2 do
  if #cks < n and tonumber(head[j + 1]) <= NOW then
    cks[#cks + 1] = head[j]
  else
    nxt = tonumber(head[j + 1])
    break
  end
end
if #cks > 0 then call_many('ZREM', P .. 'due', cks) end
-- a full take with more in `due`: this worker may stay busy past when that is due, so the
-- wake is handed on to another idle worker (one BLPOP wakes one worker; sharded, every
-- worker hears every wake and knows each shard's head from its last look)
if not SHARD and #cks == n and nxt then wake() end
local leased = {}
for k, ck in ipairs(cks) do
  local pending = redis.call('HGETALL', P .. 'p:' .. ck)
  if #pending > 0 then
    local tok = token .. ':' .. k
    redis.call('SET', P .. 'lease:' .. ck, tok, 'PX', lease)
    leased[#leased + 1] = NOW + lease
    leased[#leased + 1] = ck
    local applied, touches = applied_for(ck, pending)
    local arrays = touches and redis.call('GET', P .. 'arr:' .. ck) or ''
    out[#out + 1] = {ck, tok, pending, arrays, redis.call('LLEN', P .. 'att:' .. ck), applied}
  end
end
if #leased > 0 then call_many('ZADD', P .. 'inflight', leased) end
if #out == 0 and state ~= 'closed' then circuit_reopen(P) end
if rate > 0 and #out > 0 then
  tat = tat + #out * interval
  redis.call('SET', P .. 'rl', string.format('%.3f', tat), 'PX', math.ceil(tat - NOW) + 1000)
end
if not nxt then return {out, -1, NOW} end
return {out, math.max(nxt - NOW, 0), NOW}
