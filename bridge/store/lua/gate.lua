-- gate: one Convocore account's own circuit breaker and rate limit, when the deployment has
-- several accounts ([convocore.accounts]); each account's keys stand apart, so one account's
-- outage never holds back another's conversations.
-- Includes: prelude (NOW is Redis's clock, as for every script).
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
local ck, rk, rl = base .. 'circuit', base .. 'recent', base .. 'rl'

local function open(cooldown)
  redis.call('HSET', ck, 'state', 'open', 'until', NOW + cooldown)
  redis.call('HINCRBY', ck, 'opened', 1)
  redis.call('DEL', rk)
end

if ARGV[3] == 'ask' then
  local rate, probe = tonumber(ARGV[4]), tonumber(ARGV[5])
  local c = redis.call('HMGET', ck, 'state', 'until')
  local state, till = c[1] or 'closed', tonumber(c[2] or '0')
  if state ~= 'closed' then
    if NOW < till then return till - NOW end
    redis.call('HSET', ck, 'state', 'half', 'until', NOW + probe)
  end
  if rate > 0 then
    local interval = 1000 / rate
    local burst = math.max(1, math.floor(rate))
    local tat = math.max(NOW, tonumber(redis.call('GET', rl) or '0'))
    if NOW + burst * interval - tat < interval then
      if state ~= 'closed' then redis.call('HSET', ck, 'state', state, 'until', NOW) end
      return math.ceil(tat - (burst - 1) * interval - NOW)
    end
    tat = tat + interval
    redis.call('SET', rl, string.format('%.3f', tat), 'PX', math.ceil(tat - NOW) + 1000)
  end
  return 0
end

local verdict, window = ARGV[4], tonumber(ARGV[5])
local ratio, cooldown = tonumber(ARGV[6]), tonumber(ARGV[7])
local state = redis.call('HGET', ck, 'state') or 'closed'
if state == 'half' then
  if verdict == 'ok' then
    redis.call('HSET', ck, 'state', 'closed', 'until', 0)
    redis.call('DEL', rk)
  else
    open(cooldown)
  end
elseif state == 'closed' then
  -- the last window..2 * window verdicts, trimmed once every `window` pushes (circuit.lua)
  if redis.call('LPUSH', rk, verdict == 'ok' and 0 or 1) > 2 * window then
    redis.call('LTRIM', rk, 0, window - 1)
  end
  if verdict == 'fail' then
    local recent = redis.call('LRANGE', rk, 0, window - 1)
    local fails = 0
    for _, v in ipairs(recent) do fails = fails + tonumber(v) end
    if #recent >= window and fails * 1000 >= ratio * #recent then open(cooldown) end
  end
end
return redis.call('HGET', ck, 'state') or 'closed'
