-- A circuit breaker: `<base>circuit` hash {state: closed|open|half, until: ms, opened:
-- count} and `<base>recent`, the latest verdicts newest first (1 = failed; the first
-- `window` of them count). `base` is P for the one every worker shares (take, settle), or
-- P .. 'acct:<name>:' for one Convocore account's own (gate). Needs prelude.lua.

-- before taking work: how many conversations may be taken (0 while open), and until when
-- the circuit stays open; an open circuit past its cooldown lets one probe through (half)
local function circuit_gate(base, n, probe_ms)
  local c = redis.call('HMGET', base .. 'circuit', 'state', 'until')
  local state, till = c[1] or 'closed', tonumber(c[2] or '0')
  if state == 'closed' then return n, state, 0 end
  if NOW < till then return 0, state, till end
  redis.call('HSET', base .. 'circuit', 'state', 'half', 'until', NOW + probe_ms)
  return 1, 'half', 0
end

-- a probe that found nothing to send closes nothing: back to open, due now (workers told
-- to wait out the probe's lease are woken: the next may probe)
local function circuit_reopen(base)
  redis.call('HSET', base .. 'circuit', 'state', 'open', 'until', NOW)
  wake()
end

local function circuit_open(base, cooldown)
  redis.call('HSET', base .. 'circuit', 'state', 'open', 'until', NOW + cooldown)
  redis.call('HINCRBY', base .. 'circuit', 'opened', 1)
  redis.call('DEL', base .. 'recent')
end

-- after an attempt: verdict 'ok' or 'fail' (a retryable failure of the target)
local function circuit_record(base, verdict, window, ratio_permille, cooldown)
  local state = redis.call('HGET', base .. 'circuit', 'state') or 'closed'
  if state == 'half' then
    if verdict == 'ok' then
      redis.call('HSET', base .. 'circuit', 'state', 'closed', 'until', 0)
      redis.call('DEL', base .. 'recent')
      wake()  -- closed: workers told to wait out the probe's lease take again now
    else
      circuit_open(base, cooldown)
    end
  elseif state == 'closed' then
    -- the list holds the last window..2 * window verdicts, trimmed once every `window`
    -- pushes; only its first `window` are read
    if redis.call('LPUSH', base .. 'recent', verdict == 'ok' and 0 or 1) > 2 * window then
      redis.call('LTRIM', base .. 'recent', 0, window - 1)
    end
    if verdict == 'fail' then
      local recent = redis.call('LRANGE', base .. 'recent', 0, window - 1)
      local fails = 0
      for _, v in ipairs(recent) do fails = fails + tonumber(v) end
      if #recent >= window and fails * 1000 >= ratio_permille * #recent then
        circuit_open(base, cooldown)
      end
    end
  end
end

-- several attempts' verdicts, in order (one settle call's, or a worker's batch of them): while
-- the circuit is closed and none of them failed (the common case), one read and one push;
-- otherwise one at a time, exactly as above
local function circuit_record_all(base, verdicts, window, ratio_permille, cooldown)
  local all_ok = #verdicts > 0
  for _, verdict in ipairs(verdicts) do
    if verdict ~= 'ok' then all_ok = false break end
  end
  if all_ok and (redis.call('HGET', base .. 'circuit', 'state') or 'closed') == 'closed' then
    local zeros = {}
    for i = 1, #verdicts do zeros[i] = 0 end
    local _, length = call_many('LPUSH', base .. 'recent', zeros)
    if length > 2 * window then redis.call('LTRIM', base .. 'recent', 0, window - 1) end
    return
  end
  for _, verdict in ipairs(verdicts) do
    circuit_record(base, verdict, window, ratio_permille, cooldown)
  end
end
