-- purge: drop dead letters.
-- Includes: prelude, dead.
-- ARGV[3...] dead-letter ids. Returns how many existed.
local n = 0
for i = 2, #ARGV do
  if redis.call('EXISTS', P .. 'dl:' .. ARGV[i]) == 1 then drop_dead(ARGV[i]); n = n + 1 end
end
return n
