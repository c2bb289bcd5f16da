-- gate: a circuit breaker and rate limit asked apart from taking work: one Convocore
-- account's own, when the deployment has several accounts ([convocore.accounts]; each
-- account's keys stand apart, so one account's outage never holds back another's
-- conversations), and, in a sharded layout, the shared one (its keys `g:circuit`, `g:recent`
-- and `g:rl` in shard 0: take.lua, which keeps the unsharded one as `circuit`, `recent` and
-- `rl`, never sees them).
-- Includes: prelude (NOW is Redis's clock, as for every script), circuit (the breaker the
-- shared circuit uses, on this gate's keys).
-- ARGV[2] account name ('' for the shared gate), ARGV[3] op:
--   ask:    ARGV[4] rate (PATCHes/s, may be fractional; 0 = none), ARGV[5] probe time (ms).
--           Returns 0 when a PATCH may go now, else how long (ms, > 0) to wait before trying
--           again. An open circuit past its cooldown lets one probe through (half) until it
--           is recorded.
--   admit:  ARGV[4] n, ARGV[5] rate, ARGV[6] probe time (ms): how many of n may be taken
--           now, as take.lua's own gate says. Returns {allowed, wait ms when 0, state}.
--   after:  ARGV[4] taken, ARGV[5] allowed, ARGV[6] rate, ARGV[7] state admit answered:
--           gives back the rate slots not used, and reopens a probe that found nothing.
--   record: ARGV[4] verdicts 'ok' or 'fail', comma-separated, ARGV[5] window, ARGV[6]
--           failure ratio (permille), ARGV[7] cooldown (ms). Returns the circuit's state.
-- Keys: <base>circuit hash {state, until, opened}, <base>recent list of 0|1, <base>rl the
--       next allowed send (ms, GCRA); base is P .. 'acct:<name>:' or P .. 'g:'.
local base = P .. 'g:'
if ARGV[2] ~= '' then base = P .. 'acct:' .. ARGV[2] .. ':' end
local rl = base .. 'rl'
local op = ARGV[3]

-- how many of n may go now by the circuit and the rate limit, reserving their rate slots:
-- {allowed, wait ms when 0, state} (ask is admit of one)
local function admit(n, rate, probe)
  local state, till
  n, state, till = circuit_gate(base, n, probe)
  if n == 0 then return {0, math.max(till - NOW, 0), state} end
  if rate > 0 then
    local interval = 1000 / rate
    local burst = math.max(1, math.floor(rate))
    local tat = math.max(NOW, tonumber(redis.call('GET', rl) or '0'))
    local allowed = math.floor((NOW + burst * interval - tat) / interval)
    if allowed <= 0 then
      if state ~= 'closed' then circuit_reopen(base) end  -- the probe did not go: due now
      return {0, math.max(math.ceil(tat - (burst - 1) * interval) - NOW, 0), state}
    end
    n = math.min(n, allowed)
    tat = tat + n * interval
    redis.call('SET', rl, string.format('%.3f', tat), 'PX', math.ceil(tat - NOW) + 1000)
  end
  return {n, 0, state}
end

if op == 'ask' then
  local got = admit(1, tonumber(ARGV[4]), tonumber(ARGV[5]))
  if got[1] == 1 then return 0 end
  return math.max(got[2], 1)
end

if op == 'admit' then
  return admit(tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]))
end

if op == 'after' then
  local taken, allowed, rate = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  if taken == 0 and ARGV[7] ~= 'closed' then circuit_reopen(base) end
  if rate > 0 and taken < allowed then
    local tat = tonumber(redis.call('GET', rl) or '0') - (allowed - taken) * 1000 / rate
    if tat > NOW then
      redis.call('SET', rl, string.format('%.3f', tat), 'PX', math.ceil(tat - NOW) + 1000)
    else
      redis.call('DEL', rl)
    end
  end
  return 'ok'
end

local window, ratio, cooldown = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local verdicts = {}
for verdict in string.gmatch(ARGV[4], '[^,]+') do verdicts[#verdicts + 1] = verdict end
circuit_record_all(base, verdicts, window, ratio, cooldown)
return redis.call('HGET', base .. 'circuit', 'state') or 'closed'
