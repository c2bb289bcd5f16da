-- gate: one Convocore account's own circuit breaker and rate limit, when the deployment has
-- several accounts ([convocore.accounts]); each account's keys stand apart, so one account's
-- outage never holds back another's conversations.
-- Includes: prelude (NOW is Redis's clock, as for every script), circuit (the breaker the
-- shared circuit uses, on this account's keys).
-- ARGV[2] account name, ARGV[3] op: 'ask' or 'record'.
--   ask:    ARGV[4] rate (PATCHes/s, may be fractional; 0 = none), ARGV[5] probe time (ms).
--           Returns 0 when a PATCH may go now, else how long (ms, > 0) to wait before trying
--           again. An open circuit past its cooldown lets one probe through (half) until it
--           is recorded.
--   record: ARGV[4] verdict 'ok' or 'fail', ARGV[5] window, ARGV[6] failure ratio
--           (permille), ARGV[7] cooldown (ms). Returns the circuit's state.
-- Keys: acct:<name>:circuit hash {state, until, opened}, acct:<name>:recent list of 0|1,
--       acct:<name>:rl the next allowed send (ms, GCRA).
local base = P .. 'acct:' .. ARGV[2] .. ':'
local rl = base .. 'rl'

if ARGV[3] == 'ask' then
  local rate, probe = tonumber(ARGV[4]), tonumber(ARGV[5])
  local allowed, state, till = circuit_gate(base, 1, probe)
  if allowed == 0 then return till - NOW end
  if rate > 0 then
    local interval = 1000 / rate
    local burst = math.max(1, math.floor(rate))
    local tat = math.max(NOW, tonumber(redis.call('GET', rl) or '0'))
    if NOW + burst * interval - tat < interval then
      if state ~= 'closed' then circuit_reopen(base) end  -- the probe did not go: due now
      return math.ceil(tat - (burst - 1) * interval - NOW)
    end
    tat = tat + interval
    redis.call('SET', rl, string.format('%.3f', tat), 'PX', math.ceil(tat - NOW) + 1000)
  end
  return 0
end

circuit_record(base, ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]))
return redis.call('HGET', base .. 'circuit', 'state') or 'closed'
