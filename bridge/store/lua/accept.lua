-- accept: dedup, route and merge the events of one or more requests, atomically.
-- Includes: prelude, dead, eventlog.
-- ARGV[2] dedup ttl (s), ARGV[3] coalesce (ms), ARGV[4] max clock skew (ms), ARGV[5] a JSON
--   array of events, each
--   [seen_key, ck or '', source, ext_key, ext, fallback_ck, occurred_at (ms, -1: none given),
--    identity (the version's last digits), event id, [name, JSON payload, ...]]
-- ARGV[6] (optional) the requests' event-log rows, JSON [max_events, keep_ms, rows], and
--   ARGV[7...] their `d` fields (eventlog.lua): written with the letters their events got.
-- Every entry is made here, on Redis's clock (NOW): its receipt time is NOW, and so is its
-- version's time when the sender gave none or one later than NOW + max clock skew (a bad
-- clock must never freeze a field); the sender's time is then kept after the receipt time.
-- A handoff step's name 'h:' becomes 'h:<version>'. Entry layout: bridge/changes.py.
-- Returns one letter per event: a(ccepted), d(uplicate) or p(arked as unroutable); A or P
-- when its occurred_at was not believed; r (sharded only, nothing written): its link was set
-- since the caller looked, route it again.
local ttl, coalesce, skew = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local received = string.format('%d', NOW)
local accepted, dups = 0, 0
local touched, codes, claims = {}, {}, {}

-- the (name, entry) pairs of one event, and whether its own time was set aside
local function entries(ev)
  local at, claimed, future, at_claimed = tonumber(ev[7]), '', false, nil
  if at < 0 then
    at = NOW
  elseif at > NOW + skew then
    at_claimed = string.format('%d', at)
    claimed, at, future = ',' .. at_claimed, NOW, true
  end
  local ver = string.format('%015d', at) .. ev[8]
  local head = ver .. '\n' .. ev[3] .. '\n' .. ev[9] .. '\n' .. received .. claimed .. '\n'
  local out, given = {}, ev[10]
  for j = 1, #given, 2 do
    local name = given[j]
    if name == 'h:' then name = 'h:' .. ver end
    out[#out + 1] = name
    out[#out + 1] = head .. given[j + 1]
  end
  return out, future, at_claimed
end

for _, ev in ipairs(cjson.decode(ARGV[5])) do
  local seen, ck, source, ext_key, ext, fallback = ev[1], ev[2], ev[3], ev[4], ev[5], ev[6]
  if SHARD and ck == '' and redis.call('HEXISTS', P .. 'links:' .. source, ext) == 1 then
    -- sharded, an event is sent here (its link's shard) only to be parked; its link was set
    -- meanwhile, and its conversation may live in another shard: the caller routes it there
    codes[#codes + 1] = 'r'
  elseif redis.call('SET', P .. 'seen:' .. seen, '1', 'NX', 'EX', ttl) == false then
    dups = dups + 1
    codes[#codes + 1] = 'd'
  else
    accepted = accepted + 1
    local ch, future, at_claimed = entries(ev)
    local code
    if ck == '' then ck = redis.call('HGET', P .. 'links:' .. source, ext) or fallback end
    if ck == '' then
      local uk = P .. 'ux:' .. source .. ':' .. ext_key
      local id = redis.call('GET', uk)
      if not id then
        id = new_dead('unroutable', '', source, ext_key, '', 'no link for ' .. source .. ' ' .. ext, ext)
        redis.call('SET', uk, id)
      end
      for j = 1, #ch, 2 do merge_into(P .. 'dle:' .. id, nil, ch[j], ch[j + 1]) end
      code = 'p'
    else
      code = 'a'
      local times = {}  -- hw:<ck>'s _t and _q, read by merge for schedule (accept never writes hw)
      for j = 1, #ch, 2 do
        if merge(ck, ch[j], ch[j + 1], times) == 1 then touched[ck] = times end
      end
    end
    if future then
      code = string.upper(code)
      claims[#codes + 1] = at_claimed
    end
    codes[#codes + 1] = code
  end
end
for ck, times in pairs(touched) do schedule(ck, coalesce, times) end
count('acc', accepted)
count('dup', dups)
log_requests(6, codes, claims)
return table.concat(codes)
