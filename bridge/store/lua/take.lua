-- take: lease up to n due conversations to one worker, within the circuit and rate limit.
-- Includes: prelude, circuit.
-- ARGV[3] n, ARGV[4] lease (ms), ARGV[5] token, ARGV[6] rate limit (PATCHes/s, 0 = none)
-- Returns {{{ck, token, pending (flat hash), arrays JSON or '', attempts so far}, ...},
--          when the next conversation is due (ms), or -1}
local n, lease, token, rate = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local state, till
n, state, till = circuit_gate(n, lease)
if n == 0 then return {{}, till} end
local sec = math.floor(NOW / 1000)
if rate > 0 then
  local used = tonumber(redis.call('GET', P .. 'rl:' .. sec) or '0')
  if used >= rate then
    if state ~= 'closed' then circuit_reopen() end
    return {{}, (sec + 1) * 1000}
  end
  n = math.min(n, rate - used)
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
  redis.call('INCRBY', P .. 'rl:' .. sec, #out)
  redis.call('PEXPIRE', P .. 'rl:' .. sec, 2000)
end
local nxt = redis.call('ZRANGE', P .. 'due', 0, 0, 'WITHSCORES')
return {out, tonumber(nxt[2] or '-1')}
