-- renew: extend the leases a worker still holds.
-- Includes: prelude.
-- ARGV[2] lease (ms), then pairs ck, token. Returns 1 (renewed) or 0 (lost) per pair.
local lease, renewed = tonumber(ARGV[2]), {}
for i = 3, #ARGV, 2 do
  local ck, tok = ARGV[i], ARGV[i + 1]
  if redis.call('GET', P .. 'lease:' .. ck) == tok then
    redis.call('PEXPIRE', P .. 'lease:' .. ck, lease)
    redis.call('ZADD', P .. 'inflight', 'XX', NOW + lease, ck)
    renewed[#renewed + 1] = 1
  else
    renewed[#renewed + 1] = 0
  end
end
return renewed
