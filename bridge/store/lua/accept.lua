-- accept: dedup, route and merge the events of one or more requests, atomically.
-- Includes: prelude, dead, eventlog.
-- ARGV[3] dedup ttl (s), ARGV[4] coalesce (ms), ARGV[5] a JSON array of events, each
--   [seen_key, ck or '', source, ext_key, ext, fallback_ck, [name, entry, name, entry, ...]]
-- ARGV[6] (optional) the requests' event-log rows, JSON [max_events, keep_ms, rows], and
--   ARGV[7...] their `d` fields (eventlog.lua): written with the letters their events got.
-- Returns one letter per event: a(ccepted), d(uplicate) or p(arked as unroutable).
local ttl, coalesce = tonumber(ARGV[3]), tonumber(ARGV[4])
local accepted, dups = 0, 0
local touched, codes = {}, {}
for _, ev in ipairs(cjson.decode(ARGV[5])) do
  local seen, ck, source, ext_key, ext, fallback, ch = ev[1], ev[2], ev[3], ev[4], ev[5], ev[6], ev[7]
  if redis.call('SET', P .. 'seen:' .. seen, '1', 'NX', 'EX', ttl) == false then
    dups = dups + 1
    codes[#codes + 1] = 'd'
  else
    accepted = accepted + 1
    if ck == '' then ck = redis.call('HGET', P .. 'links:' .. source, ext) or fallback end
    if ck == '' then
      local uk = P .. 'ux:' .. source .. ':' .. ext_key
      local id = redis.call('GET', uk)
      if not id then
        id = new_dead('unroutable', '', source, ext_key, '', 'no link for ' .. source .. ' ' .. ext)
        redis.call('SET', uk, id)
      end
      for j = 1, #ch, 2 do merge_into(P .. 'dle:' .. id, nil, ch[j], ch[j + 1]) end
      codes[#codes + 1] = 'p'
    else
      codes[#codes + 1] = 'a'
      for j = 1, #ch, 2 do
        if merge(ck, ch[j], ch[j + 1]) == 1 then touched[ck] = true end
      end
    end
  end
end
for ck, _ in pairs(touched) do schedule(ck, coalesce) end
count('acc', accepted)
count('dup', dups)
log_requests(6, codes)
return table.concat(codes)
