-- log: event-log entries no other transition writes (refused requests, requests whose
-- events were all ignored, PATCHes). Includes: prelude, eventlog.
-- ARGV[3] max_events, ARGV[4] keep (ms), ARGV[5] a JSON array of rows (eventlog.lua), each
--   [0, 0, verdict, field, value, ...], ARGV[6...] their `d` fields
-- Returns one '' per row.
local rows = cjson.decode(ARGV[5])
log_entries(tonumber(ARGV[3]), tonumber(ARGV[4]), rows, {}, 6)
local out = {}
for i = 1, #rows do out[i] = '' end
return out
