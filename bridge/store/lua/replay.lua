-- replay: merge dead letters back through newest-wins.
-- Includes: prelude, dead.
-- ARGV[3] coalesce (ms), then dead-letter ids. Returns replayed|unroutable|missing per id.
local coalesce = tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV do out[#out + 1] = replay(ARGV[i], coalesce) end
return out
