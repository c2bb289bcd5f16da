-- settle: record what attempts did; several workers' settles share one call.
-- Includes: prelude, dead, circuit.
-- ARGV[3] coalesce (ms), ARGV[4] high-water ttl (ms), ARGV[5] array cache ttl (ms),
-- ARGV[6] circuit window, ARGV[7] failure ratio (permille), ARGV[8] cooldown (ms),
-- ARGV[9] a JSON array of settles, each
--   [ck, token, outcome (ok|retry|dead|release), arrays JSON or '', attempt JSON, retry_at,
--    reason, status, snippet, circuit verdict (ok|fail|''), [name, entry, ...] sent]
-- Returns each settle's dead-letter id ('' when none).
local coalesce, hw_ttl, arr_ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local window, ratio, cooldown = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])

-- what was sent is applied: drop it from pending unless overtaken, raise the high-water marks
local function applied(ck, arrays, sent)
  local pk, hwk = P .. 'p:' .. ck, P .. 'hw:' .. ck
  for j = 1, #sent, 2 do
    local name, raw = sent[j], sent[j + 1]
    if redis.call('HGET', pk, name) == raw then redis.call('HDEL', pk, name) end
    local v = version_of(raw)
    local hw = redis.call('HGET', hwk, name)
    if not hw or v > hw then redis.call('HSET', hwk, name, v) end
  end
  redis.call('HSET', hwk, '_t', NOW)
  redis.call('PEXPIRE', hwk, hw_ttl)
  if arrays ~= '' then redis.call('SET', P .. 'arr:' .. ck, arrays, 'PX', arr_ttl) end
  redis.call('DEL', P .. 'att:' .. ck)
  count('ok', 1)
end

local function settle(ck, token, outcome, arrays, attempt, retry_at, reason, status, snippet,
                      verdict, sent)
  local owned = redis.call('GET', P .. 'lease:' .. ck) == token
  if owned then
    redis.call('DEL', P .. 'lease:' .. ck)
    redis.call('ZREM', P .. 'inflight', ck)
  end
  local dead_id = ''
  if outcome == 'ok' then
    applied(ck, arrays, sent)
  elseif outcome == 'retry' or outcome == 'dead' then
    -- a failed attempt is recorded only by the lease holder: when the lease is gone (expired
    -- and taken over, or this very settle already ran and is repeated after a lost answer)
    -- recording it would double the attempt or dead-letter newer changes
    if owned then
      redis.call('RPUSH', P .. 'att:' .. ck, attempt)
      if outcome == 'dead' then dead_id = dead_letter_pending(ck, reason, status, snippet) end
    end
    count('fail', 1)
  end
  if owned or redis.call('EXISTS', P .. 'lease:' .. ck) == 0 then
    if outcome == 'retry' then
      redis.call('ZADD', P .. 'due', retry_at, ck)
    elseif redis.call('HLEN', P .. 'p:' .. ck) > 0 then
      redis.call('ZREM', P .. 'inflight', ck)
      schedule(ck, coalesce)
    end
  end
  if verdict ~= '' then circuit_record(verdict, window, ratio, cooldown) end
  return dead_id
end

local out = {}
for i, s in ipairs(cjson.decode(ARGV[9])) do
  out[i] = settle(s[1], s[2], s[3], s[4], s[5], tonumber(s[6]), s[7], s[8], s[9], s[10], s[11])
end
return out
