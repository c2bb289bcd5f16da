-- link: set a link and replay the unroutable events that waited for it.
-- Includes: prelude, dead.
-- ARGV[3] coalesce (ms), ARGV[4] source, ARGV[5] external id, ARGV[6] its key form, ARGV[7] ck
-- Returns 'linked', or the replay's answer when something waited.
local coalesce, source, ext, ext_key, ck = tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6], ARGV[7]
redis.call('HSET', P .. 'links:' .. source, ext, ck)
local id = redis.call('GET', P .. 'ux:' .. source .. ':' .. ext_key)
if id then return replay(id, coalesce) end
return 'linked'
