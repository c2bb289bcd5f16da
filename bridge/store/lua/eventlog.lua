-- The event log (keys.py: events): one stream entry per webhook request and per PATCH,
-- bounded by count (MAXLEN ~) and by age (MINID ~), both cheap whole-node trims.
-- log_entries(max_events, keep_ms, rows, codes, blobs, at): a row is [first, n, verdict,
-- field, value, ...]; its events are codes[first + 1 .. first + n] of the calling script
-- (accept's letters a, d, p). An empty verdict is derived from them: any a or p is accepted,
-- else any d is duplicate, else ignored. Row i's `d` field is ARGV[at + i - 1], never
-- decoded here (headers and bodies cost more to decode than to store).
local function log_entries(max_events, keep_ms, rows, codes, at)
  local key = P .. 'events'
  for i, row in ipairs(rows) do
    local first, n, verdict = row[1], row[2], row[3]
    local got = ''
    if n > 0 then got = table.concat(codes, '', first + 1, first + n) end
    if verdict == '' then
      if string.find(got, '[ap]') then
        verdict = 'accepted'
      elseif string.find(got, 'd', 1, true) then
        verdict = 'duplicate'
      else
        verdict = 'ignored'
      end
    end
    local entry = {'v', verdict, 'c', got}
    for j = 4, #row do entry[#entry + 1] = row[j] end
    entry[#entry + 1] = 'd'
    entry[#entry + 1] = ARGV[at + i - 1]
    redis.call('XADD', key, 'MAXLEN', '~', max_events, '*', unpack(entry))
  end
  if #rows > 0 then redis.call('XTRIM', key, 'MINID', '~', NOW - keep_ms) end
end

-- the same from ARGV[at], JSON [max_events, keep_ms, rows], and the blobs after it (no
-- ARGV[at]: nothing to log)
local function log_requests(at, codes)
  local arg = ARGV[at]
  if arg == nil or arg == '' then return end
  local spec = cjson.decode(arg)
  log_entries(spec[1], spec[2], spec[3], codes, at + 1)
end
