-- sweep: conversations whose lease expired (a dead worker's) go back to `due`.
-- Includes: prelude.
-- ARGV[2] in-doubt quiet period (ms): the vanished holder's PATCH may still be in flight (a
-- paused worker, a target holding it), so the conversation waits that long.
-- Returns how many leases were found expired.
local cks = redis.call('ZRANGEBYSCORE', P .. 'inflight', '-inf', NOW, 'LIMIT', 0, 500)
local swept = 0
for _, ck in ipairs(cks) do
  if redis.call('EXISTS', P .. 'lease:' .. ck) == 0 then
    redis.call('ZREM', P .. 'inflight', ck)
    if redis.call('HLEN', P .. 'p:' .. ck) > 0 then
      local at = hold_quiet(ck, tonumber(ARGV[2]))
      if redis.call('ZADD', P .. 'due', 'NX', at, ck) == 1 then added_due(at) end
    end
    swept = swept + 1
  end
end
return swept
