-- log: event-log entries no other transition writes (refused requests, requests whose
-- events were all ignored; a PATCH's rides in its settle). Includes: prelude, eventlog.
-- ARGV[2] max_events, ARGV[3] keep (ms), ARGV[4] a JSON array of rows (eventlog.lua), each
--   [0, 0, verdict, field, value, ...], ARGV[5...] their `d` fields. Entry ids and chart
--   minutes are on Redis's clock (NOW, prelude.lua), never the caller's.
-- Returns one '' per row.
local rows = cjson.decode(ARGV[4])
log_entries(tonumber(ARGV[2]), tonumber(ARGV[3]), rows, {}, 5, nil)
local out = {}
for i = 1, #rows do out[i] = '' end
return out
