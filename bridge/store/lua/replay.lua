-- replay: merge dead letters back through newest-wins.
-- Includes: prelude, dead.
-- ARGV[2] coalesce (ms), then dead-letter ids. Returns replayed|unroutable|missing per id.
local coalesce = tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV do out[#out + 1] = replay(ARGV[i], coalesce) end
return out
