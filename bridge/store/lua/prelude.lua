-- Shared by every script. ARGV[1] is the key prefix, ARGV[2] the caller's clock (epoch ms);
-- a script's own arguments start at ARGV[3]. VERSION_LEN is defined above this file by
-- bridge/store/scripts.py from bridge.changes.VERSION_LEN (one definition for both sides).
local P = ARGV[1]
local NOW = tonumber(ARGV[2])

-- the version part of a change entry: newer is a plain string comparison
local function version_of(entry)
  return string.sub(entry, 1, VERSION_LEN)
end

-- sets hash[name] = entry when it is newer than what is there and than the applied version
-- in hwkey (nil: no high-water mark to respect); 1 when it did
local function merge_into(hash, hwkey, name, entry)
  local ver = version_of(entry)
  if hwkey then
    local hw = redis.call('HGET', hwkey, name)
    if hw and hw >= ver then return 0 end
  end
  local cur = redis.call('HGET', hash, name)
  if cur and version_of(cur) >= ver then return 0 end
  redis.call('HSET', hash, name, entry)
  return 1
end

local function merge(ck, name, entry)
  return merge_into(P .. 'p:' .. ck, P .. 'hw:' .. ck, name, entry)
end

local function wake()
  redis.call('LPUSH', P .. 'wake', '1')
  redis.call('LTRIM', P .. 'wake', 0, 63)
end

-- makes a conversation with pending changes due, no sooner than `coalesce` ms after its last
-- PATCH; a conversation held by a worker is scheduled again when that worker settles
local function schedule(ck, coalesce)
  if redis.call('ZSCORE', P .. 'inflight', ck) then return end
  local last = tonumber(redis.call('HGET', P .. 'hw:' .. ck, '_t') or '0')
  local due = math.max(NOW, last + coalesce)
  -- wake idle workers only when this made the conversation due: if it was already in
  -- `due`, a wake went out then (or it waits for a later time the workers know)
  if redis.call('ZADD', P .. 'due', 'NX', due, ck) == 1 and due <= NOW then wake() end
end

-- recent-rate counters for `status`, in 10 s buckets
local function count(what, n)
  if n > 0 then
    local k = P .. 'r:' .. what .. ':' .. math.floor(NOW / 10000)
    if redis.call('INCRBY', k, n) == n then redis.call('EXPIRE', k, 130) end
  end
end
