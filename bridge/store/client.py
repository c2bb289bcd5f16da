"""`Store`: the async face of the Redis layout (keys.py), one per process.

Every transition is one Lua script (lua/*.lua), so ingest and workers never race: a change
is merged into the pending hash only if it is newer than both what is pending and what was
applied; a worker takes a conversation by setting its lease in the same script that removes
it from `due`; settling removes only the entries that were sent and not overtaken meanwhile.
Keys are built inside the scripts from the prefix; each call declares KEYS[1] (any key of
the prefix: on Redis Cluster the prefix is one hash tag, so every key is in that key's slot,
and the client talks to that slot's primary, bridge/store/slot_owner.py) and, when RQ shares
a single server, KEYS[2], RQ's failed-job registry (dead.lua drops a dead letter's RQ job).
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import replace
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import unquote

import orjson
from redis.exceptions import NoScriptError, RedisError
from rq.suspension import WORKERS_SUSPENDED

from bridge.changes import VERSION_LEN, decode, identity
from bridge.config import DeliverySettings, RedisSettings
from bridge.errors import NotFound, StoreUnavailable
from bridge.status import Circuit, Rates, StatusReport
from bridge.store import keys
from bridge.store.connect import async_client, require_store_support, store_client, store_errors
from bridge.store.connect import redact as _redact
from bridge.store.group_commit import GroupCommit
from bridge.store.keys import LOG_ROW, conversation_key, ext_key, prefix_for, split_key
from bridge.store.records import (
    AcceptResult,
    ConversationState,
    DeadLetter,
    Outcome,
    Routed,
    SettleOptions,
    SettleRow,
    Work,
)
from bridge.store.replication import add_waits, check_waits
from bridge.store.scripts import ScriptName, script_keys, source

SCRIPT_TIMEOUT_S = 5.0
# Decoding this many entries takes ~10 ms of CPU: more goes to a thread, so one conversation
# with a huge tag list cannot stall every other one on the worker's event loop.
OFFLOAD_ENTRIES = 5000
EVENTS_SLICE = 2000  # event-log entries one search call reads: ~1 ms of Redis at a time
_RATES = ("accepted", "duplicates", "patched", "failed", "dead_lettered")
_RATE_KEYS = ("acc", "dup", "ok", "fail", "dead")  # r:<what> counters the scripts keep
P = ParamSpec("P")
R = TypeVar("R")


def now_ms() -> int:
    """This host's clock (epoch ms). Only for what stays on this host (log fields, metric
    arithmetic through `Store.clock_offset_ms`): every time kept in Redis is Redis's own
    (`Store.redis_now_ms`, and NOW inside the scripts)."""
    return int(time.time() * 1000)


@functools.lru_cache(maxsize=16)
def _settle_options(options: SettleOptions) -> str:
    """settle.lua's ARGV[2]: its options as one JSON object (made once per settings)."""
    return orjson.dumps(options).decode()


def _unavailable_as_error(
    method: Callable[Concatenate[Store, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[Store, P], Coroutine[Any, Any, R]]:
    """Redis's own errors on a direct read or write, as StoreUnavailable like every script
    call's: the admin API and page answer 503, never a 500 with a traceback."""

    @functools.wraps(method)
    async def wrapper(store: Store, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with store_errors(store.url):
            return await method(store, *args, **kwargs)

    return wrapper


class Store:
    # Redis's clock minus this host's (ms), as of the last take: the worker turns receipt
    # times (Redis's) into latencies with it
    clock_offset_ms = 0

    def __init__(
        self,
        url: str,
        *,
        prefix: str | None = None,
        durability: RedisSettings | None = None,
        rq_url: str = "",
        **client_options: Any,
    ) -> None:
        options: dict[str, Any] = {
            "socket_connect_timeout": 2.0,
            "socket_timeout": SCRIPT_TIMEOUT_S,
            "retry_on_timeout": False,
            "health_check_interval": 10,
            "max_connections": 256,
            "decode_responses": True,
        }
        options.update(client_options)
        require_store_support(url, rq_url=rq_url)  # Cluster: RQ on a Redis of its own
        self.prefix = prefix if prefix is not None else prefix_for(url)
        anchor = self.key("due")
        self.redis: Any = store_client(url, anchor, **options)  # decode_responses: str
        # The scripts (every hot-path call) run on a second client without a socket timeout,
        # bounded instead by one asyncio.timeout per call: redis-py wraps every write in
        # asyncio.wait_for when a socket timeout is set, which costs a task per command.
        self._scripts: Any = store_client(url, anchor, **{**options, "socket_timeout": None})
        self.url = url
        # RQ's Redis (its worker registry and `rq suspend`): `url`'s unless given
        self.rq_url = rq_url or url
        self._rq: Any = self.redis if self.rq_url == url else async_client(self.rq_url, **options)
        self.durability = durability or RedisSettings()
        self._keys = script_keys(url, self.prefix)
        self._script: dict[ScriptName, Any] = {}
        self._groups: dict[tuple[Any, tuple[int | str, ...]], GroupCommit[Any, Any]] = {}

    def key(self, *parts: str) -> str:
        return keys.key(self.prefix, *parts)

    async def close(self) -> None:
        await self.redis.aclose()
        await self._scripts.aclose()
        if self._rq is not self.redis:
            await self._rq.aclose()

    async def live_workers(self) -> int:
        """Workers with a current RQ registration on the convo-bridge queue."""
        from bridge.store.rq_workers import live_workers

        with store_errors(self.rq_url):
            return await asyncio.to_thread(live_workers, self.rq_url)

    async def delivery_paused(self) -> bool:
        """Whether RQ's workers are suspended (`rq suspend`): ours take no work meanwhile."""
        with store_errors(self.rq_url):
            return bool(await self._rq.exists(WORKERS_SUSPENDED))

    @_unavailable_as_error
    async def pause_delivery(self, on: bool) -> None:
        """Suspend (True) or resume (False) the workers, as `rq suspend` / `rq resume` do:
        RQ's own flag, which our workers read too (on RQ's Redis; waited for like any
        admin write when that is the store's)."""
        if self.rq_url == self.url:
            await self._write(("SET", WORKERS_SUSPENDED, "1") if on else ("DEL", WORKERS_SUSPENDED))
            return
        with store_errors(self.rq_url):
            if on:
                await self._rq.set(WORKERS_SUSPENDED, "1")
            else:
                await self._rq.delete(WORKERS_SUSPENDED)

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    def _lua(self, name: ScriptName) -> Any:
        script = self._script.get(name)
        if script is None:
            script = self._script[name] = self._scripts.register_script(source(name))
        return script

    def _grouped(self, name: ScriptName, head: tuple[int | str, ...]) -> GroupCommit[Any, Any]:
        """Concurrent calls of script `name` with the same leading arguments share one call:
        their rows go as one JSON array, the last argument; the script answers one item per
        row (a string of letters, or an array)."""
        group = self._groups.get((name, head))
        if group is None:

            async def send(rows: list[Any]) -> Any:
                return await self._run(name, [*head, orjson.dumps(rows)])

            group = self._groups[(name, head)] = GroupCommit(send)
        return group

    def _accept_group(
        self, head: tuple[int, ...], log_bounds: tuple[int, int]
    ) -> GroupCommit[list[Any], Any]:
        """Like `_grouped("accept", head)`, with the callers' event-log rows (LOG_ROW after
        their events) sent apart, as the script's last argument, each pointing at its
        events; their answers are ''."""
        group = self._groups.get(("accept", head + log_bounds))
        if group is None:

            async def send(rows: list[list[Any]]) -> list[str]:
                events: list[list[Any]] = []
                logs: list[list[Any]] = []
                blobs: list[bytes] = []
                for row in rows:
                    if row[0] == LOG_ROW:
                        logs.append([len(events) - row[1], row[1], row[2], *row[4:]])
                        blobs.append(row[3])
                    else:
                        events.append(row)
                args: list[Any] = [*head, orjson.dumps(events)]
                if logs:
                    args += [orjson.dumps([*log_bounds, logs]), *blobs]
                letters = iter(str(await self._run("accept", args)))
                return ["" if row[0] == LOG_ROW else next(letters) for row in rows]

            group = self._groups[("accept", head + log_bounds)] = GroupCommit(send)
        return group

    async def log(self, rows: list[list[Any]], bounds: tuple[int, int]) -> None:
        """Write event-log rows (bridge.eventlog) that no other call carries; concurrent
        callers share one script call."""
        group = self._groups.get(("log", bounds))
        if group is None:

            async def send(rows: list[list[Any]]) -> Any:
                spec = orjson.dumps([[0, row[1], row[2], *row[4:]] for row in rows])
                return await self._run("log", [*bounds, spec, *(row[3] for row in rows)])

            group = self._groups[("log", bounds)] = GroupCommit(send)
        await group.submit(rows, sum(len(x) for row in rows for x in row[3:]))

    async def events(
        self, groups: list[list[list[str]]], *, upper: str, lower: str, limit: int
    ) -> list[tuple[str, list[str]]]:
        """Event-log entries matching `groups` (lua/events.lua), newest first, between the
        stream ids `lower` and `upper` (exclusive: '(' + id), at most `limit`."""
        found: list[tuple[str, list[str]]] = []
        spec = orjson.dumps(groups)
        while len(found) < limit:
            matches, last = await self._run(
                "events", [upper, lower, EVENTS_SLICE, limit - len(found), spec]
            )
            found += [(str(i), list(flat)) for i, flat in matches]
            if not last:
                break
            upper = f"({last}"
        return found

    async def _run(self, name: ScriptName, args: Iterable[Any]) -> Any:
        try:
            async with asyncio.timeout(SCRIPT_TIMEOUT_S):
                with store_errors(self.url):
                    if self.durability.durability == "replica":
                        return await self._replicated(name, [self.prefix, *args])
                    return await self._lua(name)(keys=self._keys, args=[self.prefix, *args])
        except TimeoutError:
            raise StoreUnavailable(
                f"Redis at {_redact(self.url)}: no answer within {SCRIPT_TIMEOUT_S:g} s"
            ) from None

    async def _replicated(self, name: ScriptName, args: list[Any]) -> Any:
        """Script `name`, then WAIT and WAITAOF on the same connection (one pipeline, one
        round trip, bridge/store/replication.py): its answer only once the replicas hold
        the write, else NotReplicated, so the caller answers 503 and never 2xx. The sender's
        retry reruns the script, which writes (its counters) and waits again: a duplicate
        is not acknowledged before the write it repeats is on the replicas either."""
        script = self._lua(name)
        for _ in range(2):
            async with self._scripts.pipeline(transaction=False) as pipe:
                pipe.evalsha(script.sha, len(self._keys), *self._keys, *args)
                add_waits(pipe, self.durability)
                answer, *waits = await pipe.execute(raise_on_error=False)
            if isinstance(answer, NoScriptError):  # a new or restarted primary: load, rerun
                await self._scripts.script_load(script.script)
                continue
            if isinstance(answer, Exception):
                raise answer
            check_waits(waits, self.durability, _redact(self.url))
            return answer
        raise StoreUnavailable(f"Redis at {_redact(self.url)}: script {name} would not load")

    async def _write(self, *commands: tuple[str, ...]) -> list[Any]:
        """Direct writes (not scripts) in one pipeline, waiting for the replicas like a
        script under replica durability. Their answers."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            add_waits(pipe, self.durability)
            replies = await pipe.execute(raise_on_error=False)
        answers: list[Any] = replies[: len(commands)]
        for reply in answers:
            if isinstance(reply, Exception):
                raise reply
        check_waits(replies[len(commands) :], self.durability, _redact(self.url))
        return answers

    # --- ingest ---

    async def accept(
        self,
        events: Sequence[Routed],
        *,
        dedup_ttl_s: int,
        coalesce_ms: int,
        max_clock_skew_ms: int = 300_000,
        log: list[Any] | None = None,
        log_bounds: tuple[int, int] = (0, 0),
    ) -> AcceptResult:
        """Dedup, route and merge every event of one request, atomically. The script dates
        each event by Redis's clock: its receipt, and its version when the sender gave no
        time or one later than receipt + `max_clock_skew_ms`. `log`, the request's
        event-log row (bridge.eventlog), is written in the same call with the verdicts its
        events got, bounded by `log_bounds` (max entries, keep ms)."""
        rows: list[list[Any]] = [
            [
                f"{ev.source}:{ev.event_id}",
                ev.ck,
                ev.source,
                ext_key(ev.external_id),
                ev.external_id,
                ev.fallback_ck,
                -1 if ev.occurred_at is None else ev.occurred_at,
                identity(ev.source, ev.event_id),
                ev.event_id,
                [x for pair in ev.changes for x in pair],
            ]
            for ev in events
        ]
        # the entries the script makes: each payload behind version, source, event id, times
        nbytes = sum(
            len(name) + len(payload) + len(ev.source) + len(ev.event_id) + VERSION_LEN + 30
            for ev in events
            for name, payload in ev.changes
        )
        if log is not None:
            rows.append(log)
            nbytes += sum(len(x) for x in log[3:])
        head = (dedup_ttl_s, coalesce_ms, max_clock_skew_ms)
        codes = await self._accept_group(head, log_bounds).submit(rows, nbytes)
        if log is not None:
            codes = codes[:-1]  # the log row's answer ('')
        future = tuple(i for i, code in enumerate(codes) if code.isupper())
        codes = [code.lower() for code in codes]
        parked = codes.count("p")
        return AcceptResult(codes.count("a") + parked, codes.count("d"), parked, future)

    # --- delivery ---

    async def take(
        self, n: int, *, lease_ms: int, rate_limit: float
    ) -> tuple[list[Work], int | None]:
        """Up to `n` due conversations, each now leased to us; and in how many ms the next
        one is due (on Redis's clock, so this host's own clock does not matter)."""
        token = uuid.uuid4().hex
        items, nxt, redis_now = await self._run(
            "take", [n, lease_ms, token, repr(float(rate_limit))]
        )
        offset = self.clock_offset_ms = int(redis_now) - now_ms()
        if sum(len(item[2]) + len(item[5]) for item in items) > 2 * OFFLOAD_ENTRIES:
            work = await asyncio.to_thread(_works, items, offset)  # keep the loop responsive
        else:
            work = _works(items, offset)
        return work, (None if int(nxt) < 0 else int(nxt))

    async def settle(
        self,
        work: Work,
        outcome: Outcome,
        *,
        settings: DeliverySettings,
        log: list[Any] | None = None,
        log_bounds: tuple[int, int] = (0, 0),
    ) -> str:
        """Record what an attempt did; concurrent settles share one script call. `log`, the
        attempt's event-log row (bridge.eventlog.patch_entry), is written in the same call,
        with the dead letter's id when the settle made one, bounded by `log_bounds` (max
        entries, keep ms). Returns that dead letter's id, else ''."""
        d = settings
        options = SettleOptions(
            coalesce_ms=d.coalesce_ms,
            array_cache_ms=int(d.array_cache_s * 1000),
            circuit_window=d.circuit_window,
            circuit_failure_permille=int(d.circuit_failure_ratio * 1000),
            circuit_cooldown_ms=int(d.circuit_cooldown_s * 1000),
            in_doubt_quiet_ms=int(d.in_doubt_quiet_s * 1000),
            log_max_events=log_bounds[0],
            log_keep_ms=log_bounds[1],
        )
        row = SettleRow(
            ck=work.ck,
            token=work.token,
            outcome=outcome.kind,
            arrays=orjson.dumps(outcome.arrays).decode() if outcome.arrays is not None else "",
            attempt=orjson.dumps(outcome.attempt).decode() if outcome.attempt else "{}",
            retry_in_ms=outcome.retry_in_ms,
            reason=outcome.reason,
            status=outcome.status,
            snippet=outcome.snippet[:300],
            circuit=outcome.circuit,
            sent=[x for e in outcome.sent for x in (e.name, e.raw)],
            in_doubt=outcome.in_doubt,
            log=[] if log is None else [0, log[1], log[2], *log[4:]],
        )
        blob: bytes = b"" if log is None else log[3]
        nbytes = sum(len(e.raw) for e in outcome.sent) + len(row.arrays) + len(blob)
        (dead_id,) = await self._settle_group(_settle_options(options)).submit(
            [(row, blob)], nbytes
        )
        return str(dead_id)

    def _settle_group(self, options: str) -> GroupCommit[tuple[SettleRow, bytes], Any]:
        """Like `_grouped("settle", (options,))`, with the rows' event-log blobs sent apart
        (never decoded by the script): ARGV[3 + n] is the n-th logged row's `d` field."""
        group = self._groups.get(("settle", (options,)))
        if group is None:

            async def send(rows: list[tuple[SettleRow, bytes]]) -> Any:
                settles: list[SettleRow] = []
                blobs: list[bytes] = []
                for row, blob in rows:
                    if row.log:
                        blobs.append(blob)
                        row = replace(row, log_blob=len(blobs))
                    settles.append(row)
                return await self._run("settle", [options, orjson.dumps(settles), *blobs])

            group = self._groups[("settle", (options,))] = GroupCommit(send)
        return group

    async def renew(self, held: Sequence[tuple[str, str]], lease_ms: int) -> list[bool]:
        """Extend each (ck, token) lease still ours; for each, whether it was."""
        if not held:
            return []
        flags = await self._run("renew", [lease_ms, *[x for p in held for x in p]])
        return [int(f) == 1 for f in flags]

    async def gate(self, account: str, *, rate: float, probe_ms: int) -> int:
        """0 when `account` may be sent to now (its own circuit and rate limit), else how
        long (ms, on Redis's clock like every due time) to wait before trying again."""
        return int(await self._run("gate", [account, "ask", repr(float(rate)), probe_ms]))

    async def gate_record(self, account: str, verdict: str, settings: DeliverySettings) -> str:
        """Record an attempt's verdict ('ok' or 'fail') in `account`'s own circuit."""
        d = settings
        args = [
            account,
            "record",
            verdict,
            d.circuit_window,
            int(d.circuit_failure_ratio * 1000),
            int(d.circuit_cooldown_s * 1000),
        ]
        return str(await self._run("gate", args))

    async def sweep(self, quiet_ms: int) -> int:
        return int(await self._run("sweep", [quiet_ms]))

    async def wait_for_work(self, conn: Any, timeout_s: float) -> None:
        """Block on the wake list until ingest signals new work, or `timeout_s` passes."""
        with store_errors(self.url):
            await conn.blpop([self.key("wake")], timeout=max(timeout_s, 0.01))

    # --- dead letters ---

    @_unavailable_as_error
    async def dead_letter_ids(self, limit: int = 1000) -> list[str]:
        ids = await self.redis.zrange(self.key("dlq"), 0, limit - 1)
        return [str(i) for i in ids]

    @_unavailable_as_error
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
            came_from=rec.get("from", ""),
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
        """Merge dead letters back through newest-wins; id -> replayed | unroutable | missing.
        Each replay goes in the letter's history (`dlh:`), and its conversation remembers
        it (`rf:`), so a replay that fails again points back to the letter it came from."""
        if not ids:
            return {}
        before = await self._replay_origins(ids)
        res = await self._run("replay", [coalesce_ms, *ids])
        result = {i: str(r) for i, r in zip(ids, res, strict=True)}
        await self._note_replays({i: before[i] for i, r in result.items() if r == "replayed"})
        return result

    @_unavailable_as_error
    async def _replay_origins(self, ids: Sequence[str]) -> dict[str, tuple[str, list[str]]]:
        """Per id: its conversation and its events' `source:event id`s, read before replay."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for dl_id in ids:
                pipe.hget(self.key("dl", dl_id), "ck")
                pipe.hgetall(self.key("dle", dl_id))
            found = await pipe.execute()
        out = {}
        for n, dl_id in enumerate(ids):
            ck, flat = found[2 * n], found[2 * n + 1]
            events = sorted(
                {f"{e.source}:{e.event_id}" for e in (decode(k, v) for k, v in flat.items())}
            )
            out[dl_id] = (ck or "", events[:200])
        return out

    @_unavailable_as_error
    async def _note_replays(self, replayed: dict[str, tuple[str, list[str]]]) -> None:
        if not replayed:
            return
        now = str(await self.redis_now_ms())
        commands: list[tuple[str, ...]] = []
        for dl_id, (ck, events) in replayed.items():
            commands.append(("HSET", self.key("dlh", dl_id), now, "replayed"))
            commands.append(("EXPIRE", self.key("dlh", dl_id), str(keys.HISTORY_TTL_S)))
            if ck:
                origin = orjson.dumps({"id": dl_id, "events": events}).decode()
                rf = self.key("rf", ck)
                commands.append(("SET", rf, origin, "EX", str(keys.HISTORY_TTL_S)))
        await self._write(*commands)

    @_unavailable_as_error
    async def note_dead_letter(self, ck: str, dead_id: str, events: Sequence[str]) -> str:
        """A new dead letter of conversation `ck` (with these `source:event id`s) that
        carries events of a replayed letter points back to it; that letter's history says
        so. The origin's id, or ''."""
        raw = await self.redis.get(self.key("rf", ck))
        if not raw:
            return ""
        origin = orjson.loads(raw)
        if not set(origin.get("events", ())) & set(events):
            return ""
        origin_id = str(origin["id"])
        now = str(await self.redis_now_ms())
        await self._write(
            ("HSET", self.key("dl", dead_id), "from", origin_id),
            ("HSET", self.key("dlh", origin_id), now, f"failed again as {dead_id}"),
            ("EXPIRE", self.key("dlh", origin_id), str(keys.HISTORY_TTL_S)),
            ("DEL", self.key("rf", ck)),
        )
        return origin_id

    @_unavailable_as_error
    async def replay_history(self, dl_id: str) -> dict[str, str]:
        """A dead letter's replays and what became of them: epoch ms -> what."""
        return dict(await self.redis.hgetall(self.key("dlh", dl_id)))

    @_unavailable_as_error
    async def retry_now(self, ck: str) -> bool:
        """A conversation's scheduled retry, due now instead; False when none was scheduled."""
        now = await self.redis_now_ms()  # due times are on Redis's clock
        score = await self.redis.zscore(self.key("due"), ck)
        if score is None or score <= now:
            return False
        await self._write(
            ("ZADD", self.key("due"), "XX", str(now), ck),
            ("LPUSH", self.key("wake"), "1"),
            ("LTRIM", self.key("wake"), "0", "63"),
        )
        return True

    async def purge(self, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        return int(await self._run("purge", list(ids)))

    @_unavailable_as_error
    async def dead_letter_reasons(self) -> dict[str, int]:
        raw = await self.redis.hgetall(self.key("dlr"))
        return {k: int(v) for k, v in raw.items() if int(v) > 0}

    # --- links ---

    async def link(
        self, source: str, external_id: str, agent_id: str, convo_id: str, *, coalesce_ms: int
    ) -> str:
        ck = conversation_key(agent_id, convo_id)
        res = await self._run("link", [coalesce_ms, source, external_id, ext_key(external_id), ck])
        return str(res)

    # --- applied entries ---

    async def clear_applied(self, ck: str, what: str) -> list[str]:
        """Drop applied entries of `ck` so the next event for them wins (lua/clear.lua):
        'future' (dated after Redis's now), a field name, or one change's name."""
        return sorted(str(name) for name in await self._run("clear", [ck, what]))

    @_unavailable_as_error
    async def get_link(self, source: str, external_id: str) -> tuple[str, str]:
        ck = await self.redis.hget(self.key("links", source), external_id)
        if ck is None:
            raise NotFound(f"no link for {source} {external_id!r}")
        return split_key(ck)

    @_unavailable_as_error
    async def delete_link(self, source: str, external_id: str) -> bool:
        [deleted] = await self._write(("HDEL", self.key("links", source), external_id))
        return bool(deleted)

    @_unavailable_as_error
    async def waiting_for_link(self, source: str, external_id: str) -> tuple[str | None, int]:
        """The unroutable dead letter waiting for this link, if any, and its change count."""
        waiting = await self.redis.get(self.key("ux", source, ext_key(external_id)))
        if waiting is None:
            return None, 0
        return str(waiting), int(await self.redis.hlen(self.key("dle", waiting)))

    @_unavailable_as_error
    async def set_link_only(
        self, source: str, external_id: str, agent_id: str, convo_id: str
    ) -> None:
        """Set a link without replaying what waits for it (an RQ job does that)."""
        ck = conversation_key(agent_id, convo_id)
        await self._write(("HSET", self.key("links", source), external_id, ck))

    @_unavailable_as_error
    async def links(self, sources: Iterable[str]) -> list[dict[str, str]]:
        out = []
        for source_name in sources:
            for ext, ck in (await self.redis.hgetall(self.key("links", source_name))).items():
                agent, convo = split_key(ck)
                out.append(
                    {
                        "source": source_name,
                        "external_id": ext,
                        "agent_id": agent,
                        "convo_id": convo,
                    }
                )
        return sorted(out, key=lambda x: (x["source"], x["external_id"]))

    # --- trace ---

    @_unavailable_as_error
    async def conversation(self, ck: str) -> ConversationState:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.key("p", ck))
            pipe.hgetall(self.key("hw", ck))
            pipe.lrange(self.key("att", ck), 0, -1)
            pipe.zscore(self.key("due"), ck)
            pipe.zscore(self.key("inflight"), ck)
            pipe.exists(self.key("lease", ck))
            pipe.zrange(self.key("dlq"), 0, -1)
            pipe.time()
            answers = await pipe.execute()
        pending, applied, attempts, due, inflight, leased, dl_ids, clock = answers
        suspended = await self.delivery_paused()
        now = int(clock[0]) * 1000 + int(clock[1]) // 1000
        return ConversationState(
            pending, applied, attempts, due, inflight, bool(leased), bool(suspended), dl_ids, now
        )

    @_unavailable_as_error
    async def dead_letters_of(self, ck: str, ids: Sequence[str]) -> list[str]:
        """Those of `ids` whose dead letter is conversation `ck`'s."""
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for dl_id in ids:
                pipe.hget(self.key("dl", dl_id), "ck")
            cks = await pipe.execute()
        return [i for i, c in zip(ids, cks, strict=True) if c == ck]

    # --- charts ---

    @_unavailable_as_error
    async def minute_figures(self, minutes: Sequence[int]) -> list[dict[str, str]]:
        """The `m:<minute>` hashes of these epoch minutes ({} where none was written)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for minute in minutes:
                pipe.hgetall(self.key("m", str(minute)))
            return list(await pipe.execute())

    # --- status ---

    @_unavailable_as_error
    async def redis_now_ms(self) -> int:
        """Redis's clock, the one every stored time is on."""
        seconds, micros = await self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def clock_ms(self) -> int:
        """Redis's clock (epoch ms), for callers outside the store: the scripts' NOW. (The
        layout test keeps `store.redis…` names out of other modules.)"""
        return await self.redis_now_ms()

    @_unavailable_as_error
    async def status(self) -> StatusReport:
        """The queue's figures (`workers_alive` is left to bridge.status.status_report)."""
        r, now = self.redis, await self.redis_now_ms()
        bucket = now // 10_000
        async with r.pipeline(transaction=False) as pipe:
            pipe.zcount(self.key("due"), "-inf", now)
            pipe.zcount(self.key("due"), f"({now}", "+inf")
            pipe.zrangebyscore(self.key("due"), f"({now}", "+inf", start=0, num=1, withscores=True)
            pipe.zcard(self.key("inflight"))
            pipe.zcard(self.key("dlq"))
            pipe.hgetall(self.key("circuit"))
            pipe.hgetall(self.key("dlr"))
            for what in _RATE_KEYS:
                for b in range(bucket - 5, bucket + 1):
                    pipe.get(self.key("r", what, str(b)))
            res = await pipe.execute()
        ready, scheduled, nxt, inflight, dead, circuit, reasons = res[:7]
        counters = res[7:]
        rates = {
            name: sum(int(v or 0) for v in counters[i * 6 : (i + 1) * 6])
            for i, name in enumerate(_RATES)
        }
        state = circuit.get("state", "closed")
        return StatusReport(
            conversations_waiting=int(ready),
            scheduled_retries=int(scheduled),
            next_retry_at=int(nxt[0][1]) if nxt else None,
            in_flight=int(inflight),
            dead_letters=int(dead),
            dead_letters_by_reason={k: int(v) for k, v in reasons.items() if int(v) > 0},
            circuit=Circuit(
                state=state,
                until_ms=int(circuit.get("until", "0") or 0) if state != "closed" else None,
                opened=int(circuit.get("opened", "0")),
            ),
            last_minute=Rates(**rates),
        )

    @_unavailable_as_error
    async def account_circuits(self, names: Iterable[str]) -> dict[str, Circuit]:
        """Each named account's own circuit (acct:<name>:circuit, lua/gate.lua); an account
        whose circuit was never written is closed."""
        names = sorted(names)
        if not names:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self.key("acct", name, "circuit"))
            hashes = await pipe.execute()
        return {name: Circuit.from_hash(raw) for name, raw in zip(names, hashes, strict=True)}


def _works(items: list[Any], clock_offset_ms: int) -> list[Work]:
    work = []
    for ck, tok, flat, arrays, attempts, done in items:
        entries = [decode(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
        applied = [decode(done[i], done[i + 1]) for i in range(0, len(done), 2)]
        known = orjson.loads(arrays) if arrays else None
        work.append(Work(ck, tok, entries, known, int(attempts), applied, clock_offset_ms))
    return work
