"""Every Redis key and Lua script of convo-bridge, in one place.

Keys (all under the prefix, default `cb:`; `ck` is a conversation key, see `conversation_key`):

    seen:<source>:<event id>   string, SET NX EX dedup_window_s      guarantee 2 (once per event)
    p:<ck>                     hash change name -> entry             pending changes (3, 5)
    hw:<ck>                    hash change name -> applied version   high-water marks (3)
    arr:<ck>                   string JSON {tags, handoffHistory}    arrays from the last answer
    att:<ck>                   list of attempt records (JSON)        attempts so far (6, 7)
    due                        zset ck -> due time (ms)              ready and scheduled work (5, 6)
    inflight                   zset ck -> lease expiry (ms)          work held by a worker (4, 8)
    lease:<ck>                 string token, PX lease_ms             one PATCH at a time (4)
    wake                       list                                  nudges idle workers
    dlq                        zset dead-letter id -> time           dead letters (7, 9)
    dl:<id> / dle:<id> / dla:<id>  record hash / its changes / its attempts
    dlr                        hash reason -> count
    ux:<source>:<external id>  string dead-letter id                 unroutable, waiting for a link
    links:<source>             hash external id -> ck                the link registry
    circuit / recent           hash state,until / list of 0|1        circuit breaker (9)
    rl:<second>                counter                               rate_limit_per_s (9)
    r:<what>:<10 s bucket>     counters                              recent rates for status

Every transition is one Lua script, so ingest and workers never race: a change is merged
into the pending hash only if it is newer than both what is pending and what was applied;
a worker takes a conversation by setting its lease in the same script that removes it from
`due`; settling removes only the entries that were sent and not overtaken meanwhile.
Keys are built inside the scripts, so this layout targets one Redis (not Redis Cluster).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bridge.batching import GroupCommit
from bridge.changes import Entry, decode
from bridge.errors import NotFound, StoreUnavailable

PREFIX = "cb:"
SCRIPT_TIMEOUT_S = 5.0
HIGH_WATER_TTL_MS = 30 * 86_400_000  # an event older than this and replayed later may reapply


def conversation_key(agent_id: str, convo_id: str) -> str:
    """`<agent>/<convo>`, each percent-encoded: safe as a key and as two URL path segments."""
    return f"{quote(agent_id, safe='')}/{quote(convo_id, safe='')}"


def split_key(ck: str) -> tuple[str, str]:
    agent, _, convo = ck.partition("/")
    return unquote(agent), unquote(convo)


# --- Lua -------------------------------------------------------------------------------------

_PRELUDE = r"""
local P = ARGV[1]
local NOW = tonumber(ARGV[2])
local function merge_into(hash, hwkey, name, entry)
  local ver = string.sub(entry, 1, 27)
  if hwkey then
    local hw = redis.call('HGET', hwkey, name)
    if hw and hw >= ver then return 0 end
  end
  local cur = redis.call('HGET', hash, name)
  if cur and string.sub(cur, 1, 27) >= ver then return 0 end
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
local function schedule(ck, coalesce)
  if redis.call('ZSCORE', P .. 'inflight', ck) then return end
  local last = tonumber(redis.call('HGET', P .. 'hw:' .. ck, '_t') or '0')
  local due = math.max(NOW, last + coalesce)
  -- wake idle workers only when this made the conversation due: if it was already in
  -- `due`, a wake went out then (or it waits for a later time the workers know)
  if redis.call('ZADD', P .. 'due', 'NX', due, ck) == 1 and due <= NOW then wake() end
end
local function count(what, n)
  if n > 0 then
    local k = P .. 'r:' .. what .. ':' .. math.floor(NOW / 10000)
    if redis.call('INCRBY', k, n) == n then redis.call('EXPIRE', k, 130) end
  end
end
local function new_dead(reason, ck, source, ext, status, snippet)
  local id = tostring(NOW) .. '-' .. redis.call('INCR', P .. 'dlseq')
  redis.call('HSET', P .. 'dl:' .. id, 'id', id, 'reason', reason, 'ck', ck, 'source', source,
    'external_id', ext, 'created', NOW, 'last_status', status, 'last_snippet', snippet)
  redis.call('ZADD', P .. 'dlq', NOW, id)
  redis.call('HINCRBY', P .. 'dlr', reason, 1)
  count('dead', 1)
  return id
end
local function drop_dead(id)
  local rec = redis.call('HMGET', P .. 'dl:' .. id, 'reason', 'source', 'external_id', 'ck')
  if not rec[1] then return end
  if rec[4] == '' then redis.call('DEL', P .. 'ux:' .. rec[2] .. ':' .. rec[3]) end
  redis.call('DEL', P .. 'dl:' .. id, P .. 'dle:' .. id, P .. 'dla:' .. id)
  redis.call('ZREM', P .. 'dlq', id)
  if redis.call('HINCRBY', P .. 'dlr', rec[1], -1) <= 0 then redis.call('HDEL', P .. 'dlr', rec[1]) end
end
-- merge a dead letter's changes back (newest wins against pending and applied); false if
-- it still has nowhere to go
local function replay(id, coalesce)
  local rec = redis.call('HMGET', P .. 'dl:' .. id, 'ck', 'source', 'external_id')
  if not rec[2] then return 'missing' end
  local ck = rec[1]
  if ck == '' then
    ck = redis.call('HGET', P .. 'links:' .. rec[2], rec[3])
    if not ck then return 'unroutable' end
  end
  local entries = redis.call('HGETALL', P .. 'dle:' .. id)
  local changed = 0
  for i = 1, #entries, 2 do changed = changed + merge(ck, entries[i], entries[i + 1]) end
  if redis.call('HLEN', P .. 'p:' .. ck) > 0 then schedule(ck, coalesce) end
  drop_dead(id)
  return 'replayed'
end
"""

# ARGV: P NOW dedup_ttl coalesce events_json, where events_json is a JSON array of
#   [seen_key, route(ck|''), source, ext_key, ext, fallback_ck, [name, entry, name, entry, ...]]
# (one argument instead of a dozen per event). Returns one letter per event: a(ccepted),
# d(uplicate) or p(arked as unroutable). Events of several requests may share one call.
_ACCEPT = r"""
local ttl, coalesce = tonumber(ARGV[3]), tonumber(ARGV[4])
local accepted, dups, parked = 0, 0, 0
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
      parked = parked + 1
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
return table.concat(codes)
"""

# ARGV: P NOW n lease_ms token rate_limit
_TAKE = r"""
local n, lease, token, rate = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local c = redis.call('HMGET', P .. 'circuit', 'state', 'until')
local state, till = c[1] or 'closed', tonumber(c[2] or '0')
if state ~= 'closed' then
  if NOW < till then return {{}, till} end
  redis.call('HSET', P .. 'circuit', 'state', 'half', 'until', NOW + lease)
  n = 1
end
local sec = math.floor(NOW / 1000)
if rate > 0 then
  local used = tonumber(redis.call('GET', P .. 'rl:' .. sec) or '0')
  if used >= rate then
    if state ~= 'closed' then redis.call('HSET', P .. 'circuit', 'state', 'open', 'until', NOW) end
    return {{}, (sec + 1) * 1000}
  end
  n = math.min(n, rate - used)
end
local out = {}
local cks = redis.call('ZRANGEBYSCORE', P .. 'due', '-inf', NOW, 'LIMIT', 0, n)
for k, ck in ipairs(cks) do
  redis.call('ZREM', P .. 'due', ck)
  local pending = redis.call('HGETALL', P .. 'p:' .. ck)
  if #pending > 0 then
    local tok = token .. ':' .. k
    redis.call('SET', P .. 'lease:' .. ck, tok, 'PX', lease)
    redis.call('ZADD', P .. 'inflight', NOW + lease, ck)
    local arrays = redis.call('GET', P .. 'arr:' .. ck) or ''
    out[#out + 1] = {ck, tok, pending, arrays, redis.call('LLEN', P .. 'att:' .. ck)}
  end
end
if #out == 0 and state ~= 'closed' then
  redis.call('HSET', P .. 'circuit', 'state', 'open', 'until', NOW)
end
if rate > 0 and #out > 0 then
  redis.call('INCRBY', P .. 'rl:' .. sec, #out)
  redis.call('PEXPIRE', P .. 'rl:' .. sec, 2000)
end
local nxt = redis.call('ZRANGE', P .. 'due', 0, 0, 'WITHSCORES')
return {out, tonumber(nxt[2] or '-1')}
"""

# ARGV: P NOW coalesce hw_ttl arr_ttl window ratio_permille cooldown_ms settles_json, where
#   settles_json is a JSON array of [ck, token, outcome, arrays, attempt, retry_at, reason,
#   status, snippet, circuit(ok|fail|''), [name, raw, ...]]: several workers' tasks settle in
#   one call. Returns each settle's dead-letter id ('' when none).
_SETTLE = r"""
local coalesce, hw_ttl, arr_ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local window, ratio, cooldown = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local function settle(ck, token, outcome, arrays, attempt, retry_at, reason, status, snippet,
                      verdict, sent)
  local pk, hwk = P .. 'p:' .. ck, P .. 'hw:' .. ck
  local owned = redis.call('GET', P .. 'lease:' .. ck) == token
  if owned then
    redis.call('DEL', P .. 'lease:' .. ck)
    redis.call('ZREM', P .. 'inflight', ck)
  end
  local dead_id = ''
  if outcome == 'ok' then
    for j = 1, #sent, 2 do
      local name, raw = sent[j], sent[j + 1]
      if redis.call('HGET', pk, name) == raw then redis.call('HDEL', pk, name) end
      local v = string.sub(raw, 1, 27)
      local hw = redis.call('HGET', hwk, name)
      if not hw or v > hw then redis.call('HSET', hwk, name, v) end
    end
    redis.call('HSET', hwk, '_t', NOW)
    redis.call('PEXPIRE', hwk, hw_ttl)
    if arrays ~= '' then redis.call('SET', P .. 'arr:' .. ck, arrays, 'PX', arr_ttl) end
    redis.call('DEL', P .. 'att:' .. ck)
    count('ok', 1)
  elseif outcome == 'retry' or outcome == 'dead' then
    -- a failed attempt is recorded only by the lease holder: when the lease is gone (expired
    -- and taken over, or this very settle already ran and is repeated after a lost answer)
    -- recording it would double the attempt or dead-letter newer changes
    if owned then
      redis.call('RPUSH', P .. 'att:' .. ck, attempt)
      if outcome == 'dead' then
        dead_id = new_dead(reason, ck, '', '', status, snippet)
        local entries = redis.call('HGETALL', pk)
        for j = 1, #entries, 2 do
          redis.call('HSET', P .. 'dle:' .. dead_id, entries[j], entries[j + 1])
        end
        redis.call('DEL', pk)
        redis.call('RENAME', P .. 'att:' .. ck, P .. 'dla:' .. dead_id)
      end
    end
    count('fail', 1)
  end
  if owned or redis.call('EXISTS', P .. 'lease:' .. ck) == 0 then
    if outcome == 'retry' then
      redis.call('ZADD', P .. 'due', retry_at, ck)
    elseif redis.call('HLEN', pk) > 0 then
      redis.call('ZREM', P .. 'inflight', ck)
      schedule(ck, coalesce)
    end
  end
  if verdict ~= '' then
    local ck_ = P .. 'circuit'
    local state = redis.call('HGET', ck_, 'state') or 'closed'
    if state == 'half' then
      if verdict == 'ok' then
        redis.call('HSET', ck_, 'state', 'closed', 'until', 0)
        redis.call('DEL', P .. 'recent')
      else
        redis.call('HSET', ck_, 'state', 'open', 'until', NOW + cooldown)
        redis.call('HINCRBY', ck_, 'opened', 1)
      end
    elseif state == 'closed' then
      redis.call('LPUSH', P .. 'recent', verdict == 'ok' and 0 or 1)
      redis.call('LTRIM', P .. 'recent', 0, window - 1)
      if verdict == 'fail' then
        local recent = redis.call('LRANGE', P .. 'recent', 0, -1)
        local fails = 0
        for _, v in ipairs(recent) do fails = fails + tonumber(v) end
        if #recent >= window and fails * 1000 >= ratio * #recent then
          redis.call('HSET', ck_, 'state', 'open', 'until', NOW + cooldown)
          redis.call('HINCRBY', ck_, 'opened', 1)
          redis.call('DEL', P .. 'recent')
        end
      end
    end
  end
  return dead_id
end
local out = {}
for i, s in ipairs(cjson.decode(ARGV[9])) do
  out[i] = settle(s[1], s[2], s[3], s[4], s[5], tonumber(s[6]), s[7], s[8], s[9], s[10], s[11])
end
return out
"""

# ARGV: P NOW lease_ms ck token ...
_RENEW = r"""
local lease, renewed = tonumber(ARGV[3]), 0
for i = 4, #ARGV, 2 do
  local ck, tok = ARGV[i], ARGV[i + 1]
  if redis.call('GET', P .. 'lease:' .. ck) == tok then
    redis.call('PEXPIRE', P .. 'lease:' .. ck, lease)
    redis.call('ZADD', P .. 'inflight', 'XX', NOW + lease, ck)
    renewed = renewed + 1
  end
end
return renewed
"""

# ARGV: P NOW ; puts conversations whose lease expired (a dead worker's) back in `due`
_SWEEP = r"""
local cks = redis.call('ZRANGEBYSCORE', P .. 'inflight', '-inf', NOW, 'LIMIT', 0, 500)
local swept = 0
for _, ck in ipairs(cks) do
  if redis.call('EXISTS', P .. 'lease:' .. ck) == 0 then
    redis.call('ZREM', P .. 'inflight', ck)
    if redis.call('HLEN', P .. 'p:' .. ck) > 0 then
      redis.call('ZADD', P .. 'due', 'NX', NOW, ck)
      wake()
    end
    swept = swept + 1
  end
end
return swept
"""

# ARGV: P NOW coalesce id ...
_REPLAY = r"""
local coalesce = tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV do out[#out + 1] = replay(ARGV[i], coalesce) end
return out
"""

# ARGV: P NOW id ...
_PURGE = r"""
local n = 0
for i = 3, #ARGV do
  if redis.call('EXISTS', P .. 'dl:' .. ARGV[i]) == 1 then drop_dead(ARGV[i]); n = n + 1 end
end
return n
"""

# ARGV: P NOW coalesce source ext ext_key ck ; sets a link and replays what waited for it
_LINK = r"""
local coalesce, source, ext, ext_key, ck = tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6], ARGV[7]
redis.call('HSET', P .. 'links:' .. source, ext, ck)
local id = redis.call('GET', P .. 'ux:' .. source .. ':' .. ext_key)
if id then return replay(id, coalesce) end
return 'linked'
"""


# --- Python side -------------------------------------------------------------------------------


def ext_key(external_id: str) -> str:
    return quote(external_id, safe="")


@dataclass(frozen=True, slots=True)
class Routed:
    """One accepted event on its way into Redis: where it goes and what it changes."""

    source: str
    event_id: str
    changes: Sequence[tuple[str, str]]
    ck: str = ""  # known conversation, or "" to resolve `external_id` through the links
    external_id: str = ""
    fallback_ck: str = ""  # default_agent_id/external_id when no link exists


@dataclass(frozen=True, slots=True)
class AcceptResult:
    accepted: int
    duplicates: int
    unroutable: int


@dataclass(frozen=True, slots=True)
class Work:
    """A conversation taken by a worker: its pending changes, cached arrays, attempts so far."""

    ck: str
    token: str
    entries: list[Entry]
    arrays: dict[str, Any] | None
    attempts: int

    @property
    def ids(self) -> tuple[str, str]:
        return split_key(self.ck)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What `settle` records. kind: ok | retry | dead | release."""

    kind: str
    sent: Sequence[Entry] = ()
    arrays: dict[str, Any] | None = None
    attempt: dict[str, Any] | None = None
    retry_at_ms: int = 0
    reason: str = ""
    status: str = ""
    snippet: str = ""
    circuit: str = ""  # ok | fail | "" (not counted)


@dataclass(slots=True)
class DeadLetter:
    id: str
    reason: str
    agent_id: str
    convo_id: str
    source: str
    external_id: str
    created_ms: int
    last_status: str
    last_snippet: str
    entries: list[Entry] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reason": self.reason,
            "agent_id": self.agent_id,
            "convo_id": self.convo_id,
            "source": self.source or ",".join(sorted({e.source for e in self.entries})),
            "external_id": self.external_id,
            "created_at": self.created_ms,
            "changes": len(self.entries),
            "attempts": len(self.attempts),
            "last_status": self.last_status,
            "last_answer": self.last_snippet,
        }

    def to_json(self) -> dict[str, Any]:
        out = self.summary()
        out["events"] = [
            {
                "source": e.source,
                "event_id": e.event_id,
                "occurred_at": e.occurred_at,
                "change": e.name,
                "value": e.payload,
            }
            for e in self.entries
        ]
        out["attempt_log"] = self.attempts
        return out


def now_ms() -> int:
    return int(time.time() * 1000)


class Store:
    """The async face of the Redis layout; one per process."""

    def __init__(self, url: str, *, prefix: str = PREFIX, **client_options: Any) -> None:
        options: dict[str, Any] = {
            "socket_connect_timeout": 2.0,
            "socket_timeout": SCRIPT_TIMEOUT_S,
            "retry_on_timeout": False,
            "health_check_interval": 10,
            "max_connections": 256,
            "decode_responses": True,
        }
        options.update(client_options)
        self.redis: Any = aioredis.Redis.from_url(url, **options)  # decode_responses: str
        # The scripts (every hot-path call) run on a second client without a socket timeout,
        # bounded instead by one asyncio.timeout per call: redis-py wraps every write in
        # asyncio.wait_for when a socket timeout is set, which costs a task per command.
        self._scripts: Any = aioredis.Redis.from_url(url, **{**options, "socket_timeout": None})
        self.url = url
        self.prefix = prefix
        register = self._scripts.register_script
        self._accept = register(_PRELUDE + _ACCEPT)
        self._take = register(_PRELUDE + _TAKE)
        self._settle = register(_PRELUDE + _SETTLE)
        self._renew = register(_PRELUDE + _RENEW)
        self._sweep = register(_PRELUDE + _SWEEP)
        self._replay = register(_PRELUDE + _REPLAY)
        self._purge = register(_PRELUDE + _PURGE)
        self._link = register(_PRELUDE + _LINK)
        self._groups: dict[tuple[Any, tuple[int, ...]], GroupCommit[list[Any], Any]] = {}

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def close(self) -> None:
        await self.redis.aclose()
        await self._scripts.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    def _grouped(self, script: Any, head: tuple[int, ...]) -> GroupCommit[list[Any], Any]:
        """Concurrent calls of `script` with the same leading arguments share one call: their
        rows go as one JSON array, the last argument; the script answers one item per row
        (a string of letters, or an array)."""
        group = self._groups.get((script, head))
        if group is None:

            async def send(rows: list[list[Any]]) -> Any:
                return await self._run(script, [*head, orjson.dumps(rows)])

            group = self._groups[(script, head)] = GroupCommit(send)
        return group

    async def _run(self, script: Any, args: Iterable[Any]) -> Any:
        try:
            async with asyncio.timeout(SCRIPT_TIMEOUT_S):
                return await script(args=[self.prefix, now_ms(), *args])
        except TimeoutError:
            raise StoreUnavailable(
                f"Redis at {_redact(self.url)}: no answer within {SCRIPT_TIMEOUT_S:g} s"
            ) from None
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis at {_redact(self.url)}: {type(exc).__name__}") from exc

    # --- ingest ---

    async def accept(
        self, events: Sequence[Routed], *, dedup_ttl_s: int, coalesce_ms: int
    ) -> AcceptResult:
        """Dedup, route and merge every event of one request, atomically."""
        rows = [
            [
                f"{ev.source}:{ev.event_id}",
                ev.ck,
                ev.source,
                ext_key(ev.external_id),
                ev.external_id,
                ev.fallback_ck,
                [x for pair in ev.changes for x in pair],
            ]
            for ev in events
        ]
        codes = await self._grouped(self._accept, (dedup_ttl_s, coalesce_ms)).submit(rows)
        parked = codes.count("p")
        return AcceptResult(codes.count("a") + parked, codes.count("d"), parked)

    # --- delivery ---

    async def take(
        self, n: int, *, lease_ms: int, rate_limit: float
    ) -> tuple[list[Work], int | None]:
        """Up to `n` due conversations, each now leased to us; and when the next one is due."""
        token = uuid.uuid4().hex
        items, nxt = await self._run(self._take, [n, lease_ms, token, int(rate_limit)])
        work = []
        for ck, tok, flat, arrays, attempts in items:
            entries = [decode(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
            work.append(
                Work(ck, tok, entries, orjson.loads(arrays) if arrays else None, int(attempts))
            )
        return work, (None if int(nxt) < 0 else int(nxt))

    async def settle(self, work: Work, outcome: Outcome, *, settings: Any) -> str:
        """Record what an attempt did; concurrent settles share one script call."""
        d = settings
        shared = (
            d.coalesce_ms,
            HIGH_WATER_TTL_MS,
            int(d.array_cache_s * 1000),
            d.circuit_window,
            int(d.circuit_failure_ratio * 1000),
            int(d.circuit_cooldown_s * 1000),
        )
        row = [
            work.ck,
            work.token,
            outcome.kind,
            orjson.dumps(outcome.arrays).decode() if outcome.arrays is not None else "",
            orjson.dumps(outcome.attempt).decode() if outcome.attempt else "{}",
            str(outcome.retry_at_ms),
            outcome.reason,
            outcome.status,
            outcome.snippet[:300],
            outcome.circuit,
            [x for e in outcome.sent for x in (e.name, e.raw)],
        ]
        (dead_id,) = await self._grouped(self._settle, shared).submit([row])
        return str(dead_id)

    async def renew(self, held: Sequence[tuple[str, str]], lease_ms: int) -> int:
        if not held:
            return 0
        return int(await self._run(self._renew, [lease_ms, *[x for p in held for x in p]]))

    async def sweep(self) -> int:
        return int(await self._run(self._sweep, []))

    async def wait_for_work(self, conn: Any, timeout_s: float) -> None:
        """Block on the wake list until ingest signals new work, or `timeout_s` passes."""
        try:
            await conn.blpop([self.key("wake")], timeout=max(timeout_s, 0.01))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis at {_redact(self.url)}: {type(exc).__name__}") from exc

    # --- dead letters ---

    async def dead_letter_ids(self, limit: int = 1000) -> list[str]:
        ids = await self.redis.zrange(self.key("dlq"), 0, limit - 1)
        return [str(i) for i in ids]

    async def dead_letter(self, dl_id: str) -> DeadLetter:
        r = self.redis
        rec = await r.hgetall(self.key("dl", dl_id))
        if not rec:
            raise NotFound(f"no dead letter {dl_id!r} (see `convo-bridge dlq list`)")

        flat = await r.hgetall(self.key("dle", dl_id))
        entries = sorted((decode(k, v) for k, v in flat.items()), key=lambda e: e.version)
        attempts = [orjson.loads(a) for a in await r.lrange(self.key("dla", dl_id), 0, -1)]
        agent, convo = split_key(rec["ck"]) if rec["ck"] else ("", "")
        return DeadLetter(
            id=dl_id,
            reason=rec["reason"],
            agent_id=agent,
            convo_id=convo,
            source=rec["source"],
            external_id=unquote(rec["external_id"]),
            created_ms=int(rec["created"]),
            last_status=rec.get("last_status", ""),
            last_snippet=rec.get("last_snippet", ""),
            entries=entries,
            attempts=attempts,
        )

    async def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        out = []
        for dl_id in await self.dead_letter_ids(limit):
            try:
                out.append(await self.dead_letter(dl_id))
            except NotFound:
                continue  # replayed or purged meanwhile
        return out

    async def replay(self, ids: Sequence[str], *, coalesce_ms: int) -> dict[str, str]:
        """Merge dead letters back through newest-wins; id -> replayed | unroutable | missing."""
        if not ids:
            return {}
        res = await self._run(self._replay, [coalesce_ms, *ids])
        return {i: str(r) for i, r in zip(ids, res, strict=True)}

    async def purge(self, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        return int(await self._run(self._purge, list(ids)))

    async def dead_letter_reasons(self) -> dict[str, int]:
        raw = await self.redis.hgetall(self.key("dlr"))
        return {k: int(v) for k, v in raw.items() if int(v) > 0}

    # --- links ---

    async def link(
        self, source: str, external_id: str, agent_id: str, convo_id: str, *, coalesce_ms: int
    ) -> str:
        ck = conversation_key(agent_id, convo_id)
        res = await self._run(
            self._link, [coalesce_ms, source, external_id, ext_key(external_id), ck]
        )
        return str(res)

    async def get_link(self, source: str, external_id: str) -> tuple[str, str]:
        ck = await self.redis.hget(self.key("links", source), external_id)
        if ck is None:
            raise NotFound(f"no link for {source} {external_id!r}")
        return split_key(ck)

    async def delete_link(self, source: str, external_id: str) -> bool:
        return bool(await self.redis.hdel(self.key("links", source), external_id))

    async def links(self, sources: Iterable[str]) -> list[dict[str, str]]:
        out = []
        for source in sources:
            for ext, ck in (await self.redis.hgetall(self.key("links", source))).items():
                agent, convo = split_key(ck)
                out.append(
                    {"source": source, "external_id": ext, "agent_id": agent, "convo_id": convo}
                )
        return sorted(out, key=lambda x: (x["source"], x["external_id"]))

    # --- status ---

    async def status(self) -> dict[str, Any]:
        r, now = self.redis, now_ms()
        bucket = now // 10_000
        async with r.pipeline(transaction=False) as pipe:
            pipe.zcount(self.key("due"), "-inf", now)
            pipe.zcount(self.key("due"), f"({now}", "+inf")
            pipe.zrangebyscore(self.key("due"), f"({now}", "+inf", start=0, num=1, withscores=True)
            pipe.zcard(self.key("inflight"))
            pipe.zcard(self.key("dlq"))
            pipe.hgetall(self.key("circuit"))
            for what in ("acc", "dup", "ok", "fail", "dead"):
                for b in range(bucket - 5, bucket + 1):
                    pipe.get(self.key("r", what, str(b)))
            res = await pipe.execute()
        ready, scheduled, nxt, inflight, dead, circuit = res[:6]
        counters = res[6:]
        rates = {}
        for i, what in enumerate(("accepted", "duplicates", "patched", "failed", "dead_lettered")):
            rates[what] = sum(int(v or 0) for v in counters[i * 6 : (i + 1) * 6])
        circ = dict(circuit)
        state = circ.get("state", "closed")
        until = int(circ.get("until", "0") or 0)
        return {
            "conversations_waiting": ready,
            "scheduled_retries": scheduled,
            "next_retry_at": int(nxt[0][1]) if nxt else None,
            "in_flight": inflight,
            "queue_depth": ready + scheduled + inflight,
            "dead_letters": dead,
            "dead_letters_by_reason": await self.dead_letter_reasons(),
            "circuit": {
                "state": state,
                "until": until if state != "closed" else None,
                "opened": int(circ.get("opened", "0")),
            },
            "last_minute": rates,
        }


def _redact(url: str) -> str:
    """A Redis URL without its password, for messages."""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
