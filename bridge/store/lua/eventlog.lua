-- The event log (keys.py: events): one stream entry per webhook request and per PATCH,
-- bounded by count (MAXLEN ~) and by age (MINID ~), both cheap whole-node trims; and the
-- per-minute figures of the page's charts, counted from the same rows (m:<minute>):
-- w:<verdict>:<sources> requests, p:<verdict> PATCHes, l:<bucket> webhook -> PATCH latency
-- (keys.LATENCY_BUCKETS_MS), q queue depth and dl dead letters as last sampled (qs: the
-- second of that sample; tm: the age bound the stream was last trimmed to).
-- log_entries(max_events, keep_ms, rows, codes, at, claims): a row is [first, n, verdict,
-- field, value, ...]; its events are codes[first + 1 .. first + n] of the calling script
-- (accept's letters a, d, p; A, P when the sender's time was set aside as future-dated).
-- An empty verdict is derived from them: any a or p is accepted, else any d is duplicate,
-- else ignored. claims[i] is event i's set-aside sender time (epoch ms), kept in the row as
-- `cl` (comma-separated, '' for the row's other events). Row i's `d` field is
-- ARGV[at + i - 1], never decoded here (headers and bodies cost more to decode than to
-- store). Times are NOW, Redis's own clock (prelude.lua).
local function log_entries(max_events, keep_ms, rows, codes, at, claims)
  local key = P .. 'events'
  local counts, patched, dead = {}, false, false
  for i, row in ipairs(rows) do
    local first, n, verdict = row[1], row[2], row[3]
    local got = ''
    local claimed = nil
    if n > 0 then
      got = table.concat(codes, '', first + 1, first + n)
      if string.find(got, '[pP]') then dead = true end  -- parked: dead letters may change
      if claims and string.find(got, '[AP]') then
        local cl = {}
        for e = first + 1, first + n do cl[#cl + 1] = claims[e] or '' end
        claimed = table.concat(cl, ',')
      end
    end
    if verdict == '' then
      if string.find(got, '[apAP]') then
        verdict = 'accepted'
      elseif string.find(got, 'd', 1, true) then
        verdict = 'duplicate'
      else
        verdict = 'ignored'
      end
    end
    local entry = {'v', verdict, 'c', got}
    if claimed then
      entry[#entry + 1] = 'cl'
      entry[#entry + 1] = claimed
    end
    local kind, source, lat = nil, nil, nil
    for j = 4, #row, 2 do
      entry[#entry + 1] = row[j]
      entry[#entry + 1] = row[j + 1]
      if row[j] == 'k' then kind = row[j + 1] end
      if row[j] == 'src' then source = row[j + 1] end
      if row[j] == 'lb' then lat = row[j + 1] end
    end
    local field
    if kind == 'patch' then
      patched = true
      if verdict == 'dead_lettered' then dead = true end
      field = 'p:' .. verdict
      if lat and lat ~= '' then counts['l:' .. lat] = (counts['l:' .. lat] or 0) + 1 end
    else
      field = 'w:' .. verdict .. ':' .. source
    end
    counts[field] = (counts[field] or 0) + 1
    entry[#entry + 1] = 'd'
    entry[#entry + 1] = ARGV[at + i - 1]
    redis.call('XADD', key, 'MAXLEN', '~', max_events, '*', unpack(entry))
  end
  if #rows > 0 then
    -- the page's charts (keys.py: m:<minute>): counts, and the queue as last sampled
    local mk = P .. 'm:' .. math.floor(NOW / 60000)
    for f, n in pairs(counts) do redis.call('HINCRBY', mk, f, n) end
    -- the gauges: q on a PATCH's row (a settle has just changed the queue: its last figure
    -- must be the one that stays), dl on a dead-lettered PATCH's or a parked event's row,
    -- and both once a second (`qs`, that second; none yet in a new minute's hash), so an
    -- accepted burst's depth may be up to a second behind until its PATCHes are logged
    -- (each written only when it differs from the hash's).
    -- Once a second too: the hash's expiry and the trim by age, which also runs when the
    -- age bound is a second or more past the last one (`tm`): MINID ~ trims whole nodes.
    local sec, minid = math.floor(NOW / 1000), NOW - keep_ms
    local st = redis.call('HMGET', mk, 'qs', 'tm', 'q', 'dl')
    local fresh, set = tonumber(st[1]) ~= sec, {}
    if fresh or patched then
      local q = redis.call('ZCARD', P .. 'due') + redis.call('ZCARD', P .. 'inflight')
      if tonumber(st[3]) ~= q then set = {'q', q} end
    end
    if fresh or dead then
      local dl = redis.call('ZCARD', P .. 'dlq')
      if tonumber(st[4]) ~= dl then
        set[#set + 1] = 'dl'
        set[#set + 1] = dl
      end
    end
    if fresh or minid - tonumber(st[2] or '0') >= 1000 then
      redis.call('XTRIM', key, 'MINID', '~', minid)
      set[#set + 1] = 'tm'
      set[#set + 1] = minid
    end
    if fresh then
      set[#set + 1] = 'qs'
      set[#set + 1] = sec
    end
    if #set > 0 then redis.call('HSET', mk, unpack(set)) end
    if fresh then redis.call('EXPIRE', mk, CHART_TTL_S) end
  end
end

-- the same from ARGV[at], JSON [max_events, keep_ms, rows], and the blobs after it (no
-- ARGV[at]: nothing to log)
local function log_requests(at, codes, claims)
  local arg = ARGV[at]
  if arg == nil or arg == '' then return end
  local spec = cjson.decode(arg)
  log_entries(spec[1], spec[2], spec[3], codes, at + 1, claims)
end
