-- events: search the event log, newest first, a bounded slice at a time. Includes: prelude.
-- ARGV[2] upper id ('+', or '(' .. id: below that id), ARGV[3] lower id ('-' or epoch ms),
-- ARGV[4] entries to read at most, ARGV[5] matches wanted at most,
-- ARGV[6] a JSON list of groups, each a list of alternatives [field, mode, needle] (mode
--   'eq': the field equals needle; 'in': needle occurs in it); an entry matches when every
--   group has an alternative that holds.
-- Returns {matches: {id, {field, value, ...}}..., the last id read, or '' when none is left}.
local wanted = tonumber(ARGV[5])
local groups = cjson.decode(ARGV[6])
local read = redis.call('XREVRANGE', P .. 'events', ARGV[2], ARGV[3], 'COUNT', tonumber(ARGV[4]))
local found, last = {}, ''
for _, item in ipairs(read) do
  last = item[1]
  local flat, fields = item[2], {}
  for j = 1, #flat, 2 do fields[flat[j]] = flat[j + 1] end
  local ok = true
  for _, group in ipairs(groups) do
    local any = false
    for _, alt in ipairs(group) do
      local value = fields[alt[1]]
      if value then
        if alt[2] == 'eq' then
          any = value == alt[3]
        else
          any = string.find(value, alt[3], 1, true) ~= nil
        end
      end
      if any then break end
    end
    if not any then ok = false break end
  end
  if ok then
    found[#found + 1] = item
    if #found >= wanted then break end
  end
end
if #read < tonumber(ARGV[4]) and #found < wanted then last = '' end
return {found, last}
