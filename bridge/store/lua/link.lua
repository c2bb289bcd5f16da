-- link: set a link and replay the unroutable events that waited for it.
-- Includes: prelude, dead.
-- ARGV[2] coalesce (ms), ARGV[3] source, ARGV[4] external id, ARGV[5] its key form, ARGV[6] ck
-- Returns 'linked', or the replay's answer when something waited (sharded: 'linked' too, with
-- the caller moving what waited, see dead.lua replay).
local coalesce, source, ext, ext_key, ck = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[6]
redis.call('HSET', P .. 'links:' .. source, ext, ck)
local id = redis.call('GET', P .. 'ux:' .. source .. ':' .. ext_key)
if id then return replay(id, coalesce) end
return 'linked'
