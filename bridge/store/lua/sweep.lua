-- sweep: conversations whose lease expired (a dead worker's) go back to `due`.
-- Includes: prelude.
-- No arguments of its own. Returns how many leases were found expired.
local cks = redis.call('ZRANGEBYSCORE', P .. 'inflight', '-inf', NOW, 'LIMIT', 0, 500)
local swept = 0
for _, ck in ipairs(cks) do
  if redis.call('EXISTS', P .. 'lease:' .. ck) == 0 then
    redis.call('ZREM', P .. 'inflight', ck)
    if redis.call('HLEN', P .. 'p:' .. ck) > 0 then
      redis.call('ZADD', P .. 'due', 'NX', NOW, ck)
      wake()
    end
    swept = swept + 1
  end
end
return swept
