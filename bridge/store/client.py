"""`Store`: the async face of the Redis layout (keys.py), one per process.

Every transition is one Lua script (lua/*.lua), so ingest and workers never race: a change
is merged into the pending hash only if it is newer than both what is pending and what was
applied; a worker takes a conversation by setting its lease in the same script that removes
it from `due`; settling removes only the entries that were sent and not overtaken meanwhile.
Keys are built inside the scripts, so this layout targets one Redis (not Redis Cluster).
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import unquote

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bridge.changes import decode
from bridge.config import DeliverySettings
from bridge.errors import NotFound, StoreUnavailable
from bridge.status import Circuit, Rates, StatusReport
from bridge.store import keys
from bridge.store.group_commit import GroupCommit
from bridge.store.keys import PREFIX, conversation_key, ext_key, split_key
from bridge.store.records import AcceptResult, DeadLetter, Outcome, Routed, Work
from bridge.store.scripts import ScriptName, source

SCRIPT_TIMEOUT_S = 5.0
# Decoding this many entries takes ~10 ms of CPU: more goes to a thread, so one conversation
# with a huge tag list cannot stall every other one on the worker's event loop.
OFFLOAD_ENTRIES = 5000
_RATES = ("accepted", "duplicates", "patched", "failed", "dead_lettered")
_RATE_KEYS = ("acc", "dup", "ok", "fail", "dead")  # r:<what> counters the scripts keep
P = ParamSpec("P")
R = TypeVar("R")


def now_ms() -> int:
    return int(time.time() * 1000)


def _unavailable_as_error(
    method: Callable[Concatenate[Store, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[Store, P], Coroutine[Any, Any, R]]:
    """Redis's own errors on a direct read or write, as StoreUnavailable like every script
    call's: the admin API and page answer 503, never a 500 with a traceback."""

    @functools.wraps(method)
    async def wrapper(store: Store, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(store, *args, **kwargs)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis at {_redact(store.url)}: {type(exc).__name__}") from exc

    return wrapper


class Store:
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
        self._script: dict[ScriptName, Any] = {}
        self._groups: dict[tuple[Any, tuple[int, ...]], GroupCommit[list[Any], Any]] = {}

    def key(self, *parts: str) -> str:
        return keys.key(self.prefix, *parts)

    async def close(self) -> None:
        await self.redis.aclose()
        await self._scripts.aclose()

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

    def _grouped(self, name: ScriptName, head: tuple[int, ...]) -> GroupCommit[list[Any], Any]:
        """Concurrent calls of script `name` with the same leading arguments share one call:
        their rows go as one JSON array, the last argument; the script answers one item per
        row (a string of letters, or an array)."""
        group = self._groups.get((name, head))
        if group is None:

            async def send(rows: list[list[Any]]) -> Any:
                return await self._run(name, [*head, orjson.dumps(rows)])

            group = self._groups[(name, head)] = GroupCommit(send)
        return group

    async def _run(self, name: ScriptName, args: Iterable[Any]) -> Any:
        try:
            async with asyncio.timeout(SCRIPT_TIMEOUT_S):
                return await self._lua(name)(args=[self.prefix, now_ms(), *args])
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
        nbytes = sum(len(x) for ev in events for pair in ev.changes for x in pair)
        codes = await self._grouped("accept", (dedup_ttl_s, coalesce_ms)).submit(rows, nbytes)
        parked = codes.count("p")
        return AcceptResult(codes.count("a") + parked, codes.count("d"), parked)

    # --- delivery ---

    async def take(
        self, n: int, *, lease_ms: int, rate_limit: float
    ) -> tuple[list[Work], int | None]:
        """Up to `n` due conversations, each now leased to us; and when the next one is due."""
        token = uuid.uuid4().hex
        items, nxt = await self._run("take", [n, lease_ms, token, repr(float(rate_limit))])
        if sum(len(item[2]) + len(item[5]) for item in items) > 2 * OFFLOAD_ENTRIES:
            work = await asyncio.to_thread(_works, items)  # keep the event loop responsive
        else:
            work = _works(items)
        return work, (None if int(nxt) < 0 else int(nxt))

    async def settle(self, work: Work, outcome: Outcome, *, settings: DeliverySettings) -> str:
        """Record what an attempt did; concurrent settles share one script call. Returns the
        dead letter's id when it made one, else ''."""
        d = settings
        shared = (
            d.coalesce_ms,
            keys.HIGH_WATER_TTL_MS,
            int(d.array_cache_s * 1000),
            d.circuit_window,
            int(d.circuit_failure_ratio * 1000),
            int(d.circuit_cooldown_s * 1000),
            int(d.in_doubt_quiet_s * 1000),
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
            "1" if outcome.in_doubt else "0",
        ]
        nbytes = sum(len(e.raw) for e in outcome.sent) + len(row[3])
        (dead_id,) = await self._grouped("settle", shared).submit([row], nbytes)
        return str(dead_id)

    async def renew(self, held: Sequence[tuple[str, str]], lease_ms: int) -> list[bool]:
        """Extend each (ck, token) lease still ours; for each, whether it was."""
        if not held:
            return []
        flags = await self._run("renew", [lease_ms, *[x for p in held for x in p]])
        return [int(f) == 1 for f in flags]

    async def gate(self, account: str, *, rate: float, probe_ms: int) -> int:
        """0 when `account` may be sent to now (its own circuit and rate limit), else the
        time (epoch ms) to try again."""
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
        try:
            await conn.blpop([self.key("wake")], timeout=max(timeout_s, 0.01))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis at {_redact(self.url)}: {type(exc).__name__}") from exc

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
        res = await self._run("replay", [coalesce_ms, *ids])
        return {i: str(r) for i, r in zip(ids, res, strict=True)}

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

    @_unavailable_as_error
    async def get_link(self, source: str, external_id: str) -> tuple[str, str]:
        ck = await self.redis.hget(self.key("links", source), external_id)
        if ck is None:
            raise NotFound(f"no link for {source} {external_id!r}")
        return split_key(ck)

    @_unavailable_as_error
    async def delete_link(self, source: str, external_id: str) -> bool:
        return bool(await self.redis.hdel(self.key("links", source), external_id))

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

    # --- status ---

    @_unavailable_as_error
    async def status(self) -> StatusReport:
        """The queue's figures (`workers_alive` is left to bridge.status.status_report)."""
        r, now = self.redis, now_ms()
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


def _works(items: list[Any]) -> list[Work]:
    work = []
    for ck, tok, flat, arrays, attempts, done in items:
        entries = [decode(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
        applied = [decode(done[i], done[i + 1]) for i in range(0, len(done), 2)]
        known = orjson.loads(arrays) if arrays else None
        work.append(Work(ck, tok, entries, known, int(attempts), applied))
    return work


def _redact(url: str) -> str:
    """A Redis URL without its password, for messages."""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
