-- The event log (keys.py: events): one stream entry per webhook request and per PATCH,
-- bounded by count (MAXLEN ~) and by age (MINID ~), both cheap whole-node trims.
-- log_entries(max_events, keep_ms, rows, codes): a row is [first, n, verdict, field, value,
-- ...]; its events are codes[first + 1 .. first + n] of the calling script (accept's letters
-- a, d, p). An empty verdict is derived from them: any a or p is accepted, else any d is
-- duplicate, else ignored.
local function log_entries(max_events, keep_ms, rows, codes)
  local key = P .. 'events'
  for _, row in ipairs(rows) do
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
    redis.call('XADD', key, 'MAXLEN', '~', max_events, '*', unpack(entry))
  end
  if #rows > 0 then redis.call('XTRIM', key, 'MINID', '~', NOW - keep_ms) end
end

-- the same from one JSON argument [max_events, keep_ms, rows] ('' or nil: nothing to log)
local function log_requests(arg, codes)
  if arg == nil or arg == '' then return end
  local spec = cjson.decode(arg)
  log_entries(spec[1], spec[2], spec[3], codes)
end
