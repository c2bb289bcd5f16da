-- clear: drop applied entries of one conversation (hw:<ck>) so the next event for them wins,
-- whatever its time: for an entry a bad clock dated in the future.
-- Includes: prelude.
-- ARGV[2] ck, ARGV[3] what: 'future' (every applied entry dated after NOW), or a field name
--   ('tags' / 'handoffHistory' also take their tag / handoff-step entries), or one change's
--   exact name ('f:title', 't:vip', 'h:<version>').
-- Returns the names dropped.
local hwk, what = P .. 'hw:' .. ARGV[2], ARGV[3]
local all = redis.call('HGETALL', hwk)
local dropped = {}
for j = 1, #all, 2 do
  local name, entry = all[j], all[j + 1]
  local kind, hit = string.sub(name, 1, 2), false
  if string.sub(name, 1, 1) ~= '_' then  -- _t, _q, _dl, _rs are the conversation's own
    if what == 'future' then
      hit = tonumber(string.sub(entry, 1, TIME_DIGITS)) > NOW
    elseif what == name or name == 'f:' .. what then
      hit = true
    elseif what == 'tags' then
      hit = kind == 't:'
    elseif what == 'handoffHistory' then
      hit = kind == 'h:'
    end
  end
  if hit then dropped[#dropped + 1] = name end
end
for i = 1, #dropped, 1000 do  -- unpack has a stack limit: a huge tag list goes in parts
  redis.call('HDEL', hwk, unpack(dropped, i, math.min(i + 999, #dropped)))
end
return dropped
