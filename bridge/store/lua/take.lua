-- take: lease up to n due conversations to one worker, within the circuit and rate limit.
-- Includes: prelude, circuit.
-- ARGV[3] n, ARGV[4] lease (ms), ARGV[5] token, ARGV[6] rate limit (PATCHes/s, may be
--   fractional: 0.5 = one every 2 s; 0 = none). The limit is a GCRA over all workers: `rl`
--   holds the theoretical time (ms) the next take may start; up to max(1, rate) at once.
-- Returns {{{ck, token, pending (flat hash), arrays JSON or '', attempts so far}, ...},
--          when the next conversation is due (ms), or -1}
local n, lease, token, rate = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local state, till
n, state, till = circuit_gate(n, lease)
if n == 0 then return {{}, till} end
local interval, tat = 0, NOW
if rate > 0 then
  interval = 1000 / rate
  local burst = math.max(1, math.floor(rate))
  tat = math.max(NOW, tonumber(redis.call('GET', P .. 'rl') or '0'))
  local allowed = math.floor((NOW + burst * interval - tat) / interval)
  if allowed <= 0 then
    if state ~= 'closed' then circuit_reopen() end
    return {{}, math.ceil(tat - (burst - 1) * interval)}
  end
  n = math.min(n, allowed)
end
local out = {}
local cks = redis.call('ZRANGEBYSCORE', P .. 'due', '-inf', NOW, 'LIMIT', 0, n)
for k, ck in ipairs(cks) do
  redis.call('ZREM', P .. 'due', ck)
  local pending = redis.call('HGETALL', P .. 'p:' .. ck)
  if #pending > 0 then
    local tok = token .. ':' .. k
    redis.call('SET', P .. 'lease:' .. ck, tok, 'PX', lease)
    redis.call('ZADD', P .. 'inflight', NOW + lease, ck)
    local arrays = redis.call('GET', P .. 'arr:' .. ck) or ''
    out[#out + 1] = {ck, tok, pending, arrays, redis.call('LLEN', P .. 'att:' .. ck)}
  end
end
if #out == 0 and state ~= 'closed' then circuit_reopen() end
if rate > 0 and #out > 0 then
  tat = tat + #out * interval
  redis.call('SET', P .. 'rl', string.format('%.3f', tat), 'PX', math.ceil(tat - NOW) + 1000)
end
local nxt = redis.call('ZRANGE', P .. 'due', 0, 0, 'WITHSCORES')
return {out, tonumber(nxt[2] or '-1')}
