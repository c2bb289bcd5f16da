"""`Store`: the async face of the Redis layout (keys.py), one per process.

Every transition is one Lua script (lua/*.lua), so ingest and workers never race: a change
is merged into the pending hash only if it is newer than both what is pending and what was
applied; a worker takes a conversation by setting its lease in the same script that removes
it from `due`; settling removes only the entries that were sent and not overtaken meanwhile.
Keys are built inside the scripts from a shard's prefix (bridge/store/shards.py); each call
declares KEYS[1], a key of that prefix (on Redis Cluster a shard's prefix is one hash tag, so
every key it touches is in that key's slot, and the call goes to the primary owning it,
bridge/store/cluster_map.py) and, off Cluster, KEYS[2], RQ's failed-job registry (dead.lua
drops a dead letter's RQ job). With more than one shard, a conversation's calls go to its
shard, what is shared (the circuit breaker and rate limit) to shard 0 (lua/gate.lua), and the
readers add the shards up.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import replace
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import unquote

import orjson
from redis.commands.core import AsyncScript
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    NoScriptError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from rq.suspension import WORKERS_SUSPENDED

from bridge.changes import VERSION_LEN, decode, identity
from bridge.config import DeliverySettings, RedisSettings
from bridge.errors import NotFound, StoreUnavailable
from bridge.status import Circuit, Rates, StatusReport
from bridge.store import keys
from bridge.store.cluster_map import MOVED
from bridge.store.connect import (
    async_client,
    cluster_nodes,
    require_store_support,
    store_errors,
)
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
from bridge.store.shards import WAKE_CHANNEL, Shards, shards_for

SCRIPT_TIMEOUT_S = 5.0
# Decoding this many entries takes ~10 ms of CPU: more goes to a thread, so one conversation
# with a huge tag list cannot stall every other one on the worker's event loop.
OFFLOAD_ENTRIES = 5000
EVENTS_SLICE = 2000  # event-log entries one search call reads: ~1 ms of Redis at a time
# sharded: every shard's first due time is read this often (what missed wakes left behind)
LOOK_EVERY_S = 2.0
VERDICTS_EVERY_S = 0.2  # sharded: successes for the shared circuit go together this often
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
        for attempt in range(2):
            try:
                with store_errors(store.url):
                    return await method(store, *args, **kwargs)
            except StoreUnavailable as exc:
                # a slot that moved (a failover) ran nothing: once more, on the new map
                if not store._servers.failed(exc.__cause__ or exc) or attempt:
                    raise
        raise AssertionError("unreachable")

    return wrapper


# a cluster's answers for a command it did not run: the slot is elsewhere now (MovedError is
# an AskError), not served yet, or the node is a replica now
NOT_RUN = (AskError, ClusterDownError, TryAgainError, ReadOnlyError)


class _Servers:
    """Where each shard's calls go: one server's data and script clients, or, on Redis
    Cluster, the primary owning the shard's slot (cluster_map.ClusterNodes)."""

    def __init__(self, url: str, shards: Shards, options: dict[str, Any]) -> None:
        self.cluster = shards.cluster
        # The scripts (every hot-path call) run on a second client without a socket timeout,
        # bounded instead by one asyncio.timeout per call: redis-py wraps every write in
        # asyncio.wait_for when a socket timeout is set, which costs a task per command.
        if self.cluster:
            self.nodes = cluster_nodes(url, **options)
            self.slots = [key_slot(prefix.encode()) for prefix in shards.prefixes]
        else:
            self.data0: Any = async_client(url, **options)  # decode_responses: str
            self.scripts0: Any = async_client(url, **{**options, "socket_timeout": None})

    async def data(self, shard: int) -> Any:
        if not self.cluster:
            return self.data0
        return await self.nodes.client(self.slots[shard])

    async def data_for(self, key: str) -> Any:
        """The data client for any key (the layout's record, outside every shard)."""
        if not self.cluster:
            return self.data0
        return await self.nodes.client(key_slot(key.encode()))

    async def scripts(self, shard: int) -> Any:
        if not self.cluster:
            return self.scripts0
        return await self.nodes.client(self.slots[shard], scripts=True)

    def forget(self) -> None:
        """The cluster's map may be stale (a call timed out): asked again at the next call."""
        if self.cluster:
            self.nodes.forget()

    def failed(self, exc: BaseException) -> bool:
        """After an error: a lost connection or a moved slot makes the cluster's map stale.
        True when the command surely did not run (a moved slot: worth one more try)."""
        if not self.cluster:
            return False
        if isinstance(exc, (RedisConnectionError, OSError)):
            self.nodes.forget()
            return False
        if isinstance(exc, NOT_RUN) or (
            isinstance(exc, ResponseError) and str(exc).startswith(MOVED)
        ):
            self.nodes.forget()
            return True
        return False

    async def aclose(self) -> None:
        if self.cluster:
            await self.nodes.aclose()
        else:
            await self.data0.aclose()
            await self.scripts0.aclose()


class Store:
    # Redis's clock minus this host's (ms), as of the last take: the worker turns receipt
    # times (Redis's) into latencies with it
    clock_offset_ms = 0

    def __init__(
        self,
        url: str,
        *,
        durability: RedisSettings | None = None,
        rq_url: str = "",
        migrating: bool = False,
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
        self.durability = durability or RedisSettings()
        self.shards = shards_for(url, self.durability)
        count = self.shards.count
        self.prefix = self.shards.prefixes[0]  # shard 0: the one-shard layout, the shared gate
        self._servers = _Servers(url, self.shards, options)
        self.url = url
        # RQ's Redis (its worker registry and `rq suspend`): `url`'s unless given
        self.rq_url = rq_url or url
        self._rq: Any = (
            self._servers.data0 if self.rq_url == url else async_client(self.rq_url, **options)
        )
        self._keys = [script_keys(p, self.shards.cluster) for p in self.shards.prefixes]
        self._script: dict[ScriptName, Any] = {}
        self._groups: dict[tuple[Any, ...], GroupCommit[Any, Any]] = {}
        # sharded: when each shard's next conversation is due, as this process last saw it
        # (monotonic s; 0: look), where the next take starts, and the wakes' subscription
        self._due_at = [0.0] * count
        self._cursor = 0
        self._looked_at = 0.0
        self._wakes: Any = None
        self._circuit = "closed"  # the shared circuit's state, as last recorded or read
        self._layout_checked = False
        # `convo-bridge migrate`'s own target: a move under way there is expected; any other
        # store refuses a Redis a move has not finished writing (keys.py: moving)
        self._migrating = migrating
        self._heads_read: tuple[float, list[tuple[float | None, float | None, int]]] = (-9.0, [])
        self._verdicts: list[str] = []  # sharded: successes waiting to be recorded
        self._verdicts_later: asyncio.Task[None] | None = None
        self._log_shard = 0

    def key(self, *parts: str) -> str:
        """A key of shard 0 (the one-shard layout's keys; the shared gate's)."""
        return keys.key(self.prefix, *parts)

    def key_in(self, shard: int, *parts: str) -> str:
        return keys.key(self.shards.prefixes[shard], *parts)

    def _ck_shard(self, ck: str) -> int:
        return self.shards.of_conversation(ck)

    def _dl_shard(self, dl_id: str) -> int:
        return self.shards.of_dead_letter(dl_id)

    async def _data(self, shard: int = 0) -> Any:
        if not self._layout_checked:
            await self._check_layout()
        return await self._servers.data(shard)

    async def shard_client(self, shard: int) -> Any:
        """The client of shard `shard`'s server, for a tool that reads the layout key by
        key (bridge/store/move.py); the layout is checked first, like every other use."""
        return await self._data(shard)

    async def write_in(self, shard: int, *commands: tuple[Any, ...]) -> list[Any]:
        """Plain writes to shard `shard`, in one pipeline, acknowledged like a script's
        ([redis] durability)."""
        return await self._write(*commands, shard=shard)

    async def server_identity(self) -> tuple[str, int]:
        """Shard 0's server (its run id; "" when not known) and database: two URLs may name
        the same one."""
        client = await self._servers.data_for(prefix_for(self.url) + "layout")
        db = int(client.connection_pool.connection_kwargs.get("db", 0))
        try:
            run_id = (await client.info("server")).get("run_id", "")
        except ResponseError:  # INFO not allowed to this user: not known
            run_id = ""
        return str(run_id), db

    async def move_marker(self) -> str | None:
        """The source a move onto this Redis came from, while it is under way (keys.py:
        moving); None when none is."""
        name = prefix_for(self.url) + keys.MOVING
        with store_errors(self.url):
            found = await (await self._servers.data_for(name)).get(name)
        return None if found is None else str(found)

    async def mark_move(self, source: str | None) -> None:
        """A move from `source` is under way onto this Redis (None: it is done)."""
        name = prefix_for(self.url) + keys.MOVING
        with store_errors(self.url):
            client = await self._servers.data_for(name)
            await (client.set(name, source) if source is not None else client.delete(name))

    async def held_layout(self) -> int | None:
        """The shard count a sharded store recorded on this Redis (None: one shard, or
        nothing written yet), read without the layout check."""
        name = prefix_for(self.url) + "layout"
        with store_errors(self.url):
            held = await (await self._servers.data_for(name)).get(name)
        return None if held is None else int(held)

    async def close(self) -> None:
        if self._verdicts_later is not None:
            self._verdicts_later.cancel()
        if self._wakes is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._wakes.aclose()
        await self._servers.aclose()
        if self.rq_url != self.url:
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
            return bool(await (await self._data(0)).ping())
        except (RedisError, OSError, StoreUnavailable):  # away, or a layout refused
            return False

    def _lua(self, name: ScriptName) -> Any:
        """Script `name` (called with each shard's own client: its sha is the same on every
        server)."""
        script = self._script.get(name)
        if script is None:
            script = self._script[name] = AsyncScript(None, source(name).encode())  # type: ignore[arg-type]
        return script

    async def _accept_group(
        self, head: tuple[int, ...], log_bounds: tuple[int, int], shard: int
    ) -> GroupCommit[tuple[int, list[Any]], Any]:
        """Concurrent accepts on one server share one round trip: one accept.lua call per
        shard among them, pipelined (`_run_each`). The callers' event-log rows (LOG_ROW
        after their events) go apart, as the script's last argument, each pointing at its
        events; their answers are ''."""
        server = await self._server_of(shard)
        group = self._groups.get(("accept", head + log_bounds, server))
        if group is None:

            async def send(items: list[tuple[int, list[Any]]]) -> list[str]:
                by_shard: dict[int, list[list[Any]]] = {}
                for at, row in items:
                    by_shard.setdefault(at, []).append(row)
                calls = []
                for at, rows in by_shard.items():
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
                        args += [orjson.dumps([*self._per_shard(log_bounds), logs]), *blobs]
                    calls.append((at, args))
                answers = await self._run_each("accept", calls)
                letters = {}
                for (at, _), answer in zip(calls, answers, strict=True):
                    letters[at] = iter(str(answer))
                    self._due_at[at] = 0.0  # this process's next take looks here
                return ["" if row[0] == LOG_ROW else next(letters[at]) for at, row in items]

            group = self._groups[("accept", head + log_bounds, server)] = GroupCommit(send)
        return group

    async def _server_of(self, shard: int) -> int:
        """Which server runs shard `shard`'s scripts (one server: 0, at no cost)."""
        if not self.shards.cluster:
            return 0
        with store_errors(self.url):  # a stale cluster map: 503, not a 500
            return id(await self._servers.scripts(shard))

    def _per_shard(self, bounds: tuple[int, int]) -> tuple[int, int]:
        """The event log's bounds (max entries, keep ms) for one shard's stream: the
        entries shared out, so the shards together keep about `max_events`."""
        if self.shards.count == 1:
            return bounds
        return max(bounds[0] // self.shards.count, 100), bounds[1]

    async def log(self, rows: list[list[Any]], bounds: tuple[int, int]) -> None:
        """Write event-log rows (bridge.eventlog) that no other call carries; concurrent
        callers share one script call."""
        bounds = self._per_shard(bounds)
        group = self._groups.get(("log", bounds))
        if group is None:

            async def send(rows: list[list[Any]]) -> Any:
                spec = orjson.dumps([[0, row[1], row[2], *row[4:]] for row in rows])
                # any shard's log will do: the readers merge them; turn by turn spreads them
                self._log_shard = (self._log_shard + 1) % self.shards.count
                blobs = (row[3] for row in rows)
                return await self._run("log", [*bounds, spec, *blobs], self._log_shard)

            group = self._groups[("log", bounds)] = GroupCommit(send)
        await group.submit(rows, sum(len(x) for row in rows for x in row[3:]))

    async def events(
        self, groups: list[list[list[str]]], *, upper: str, lower: str, limit: int
    ) -> list[tuple[str, list[str]]]:
        """Event-log entries matching `groups` (lua/events.lua), newest first, between the
        stream ids `lower` and `upper` (exclusive: '(' + id), at most `limit`; sharded, each
        shard's newest `limit`, merged by stream id (each shard's server's clock)."""
        spec = orjson.dumps(groups)

        async def one(shard: int) -> list[tuple[str, list[str]]]:
            found: list[tuple[str, list[str]]] = []
            top = upper
            while len(found) < limit:
                matches, last = await self._run(
                    "events", [top, lower, EVENTS_SLICE, limit - len(found), spec], shard
                )
                found += [(str(i), list(flat)) for i, flat in matches]
                if not last:
                    break
                top = f"({last}"
            return found

        parts = await asyncio.gather(*(one(i) for i in range(self.shards.count)))
        merged = [item for part in parts for item in part]
        merged.sort(key=lambda item: _stream_id(item[0]), reverse=True)
        return merged[:limit]

    async def _check_layout(self) -> None:
        """Once per store, before it reads or writes: a Redis keeps the shard count it was
        sharded with (`layout`, under the one-shard prefix, written by a sharded store
        only), and a sharded store refuses a Redis holding the one-shard layout's work
        (`due`, `dlq`): either way the keys written before would be out of sight. Refused
        (503s, and this message) saying what to set or do."""
        base = prefix_for(self.url)
        count = self.shards.count
        with store_errors(self.url):
            client = await self._servers.data_for(base + "layout")
            async with client.pipeline(transaction=False) as pipe:
                pipe.get(base + "layout")
                pipe.exists(base + "due", base + "dlq", base + "inflight")
                pipe.scan(0, match=base + "links:*", count=1000)  # links, with no queue
                pipe.get(base + keys.MOVING)
                held, old, (_, links), moving = await pipe.execute()
            old = old or bool(links)
            if held is None and count > 1 and not old:
                await client.set(base + "layout", str(count), nx=True)
                held = await client.get(base + "layout")
        where = f"Redis at {_redact(self.url)}"
        if moving is not None and not self._migrating:
            raise StoreUnavailable(
                f"{where} is the target of a `convo-bridge migrate` that has not finished "
                f"(from {moving}): run that command again to its end before starting here"
            )
        if held is None and count > 1:
            raise StoreUnavailable(
                f"{where} holds a queue, dead letters or links of the one-shard layout, and "
                f"[redis] shards makes {count}: set [redis] shards = 1, or move it onto "
                "another Redis with `convo-bridge migrate --from`"
            )
        if held is not None and int(held) != count:
            raise StoreUnavailable(
                f"{where} holds the layout of {int(held)} shards, and [redis] shards makes "
                f"{count}: set [redis] shards = {int(held)} (its queue and dead letters are "
                "under that layout), or move it onto another Redis with `convo-bridge migrate`"
            )
        self._layout_checked = True

    async def _run(self, name: ScriptName, args: Iterable[Any], shard: int = 0) -> Any:
        return (await self._run_each(name, [(shard, list(args))]))[0]

    async def _run_each(
        self, name: ScriptName, calls: list[tuple[int, list[Any]]], each_error: bool = False
    ) -> list[Any]:
        """Script `name` once per (shard, arguments), the shards all on one server, in one
        round trip. A lone call that met a moved slot (a failover: it ran nothing) goes
        once more on a fresh cluster map; several may have run in part, so they do not.
        `each_error`: a call's error is its answer (the others' stand), not raised."""
        if not self._layout_checked:
            await self._check_layout()
        try:
            async with asyncio.timeout(SCRIPT_TIMEOUT_S):
                with store_errors(self.url):
                    for attempt in range(2):
                        try:
                            client = await self._servers.scripts(calls[0][0])
                            return await self._send(name, client, calls, each_error)
                        except (RedisError, OSError) as exc:
                            if not self._servers.failed(exc) or attempt or len(calls) > 1:
                                raise
                    raise AssertionError("unreachable")
        except TimeoutError:
            self._servers.forget()
            raise StoreUnavailable(
                f"Redis at {_redact(self.url)}: no answer within {SCRIPT_TIMEOUT_S:g} s"
            ) from None

    async def _send(
        self,
        name: ScriptName,
        client: Any,
        calls: list[tuple[int, list[Any]]],
        each_error: bool = False,
    ) -> list[Any]:
        """The calls on `client`: a lone one as a plain EVALSHA; else, or under replica
        durability, pipelined, with WAIT and WAITAOF on the same connection after them (one
        round trip, bridge/store/replication.py): answered only once the replicas hold the
        writes, else NotReplicated, so the caller answers 503 and never 2xx. The sender's
        retry reruns the script, which writes (its counters) and waits again: a duplicate
        is not acknowledged before the write it repeats is on the replicas either."""
        script = self._lua(name)
        if len(calls) == 1 and self.durability.durability != "replica":
            shard, args = calls[0]
            return [await script(self._keys[shard], [self.shards.prefixes[shard], *args], client)]
        for _ in range(2):
            async with client.pipeline(transaction=False) as pipe:
                for shard, args in calls:
                    declared = self._keys[shard]
                    prefix = self.shards.prefixes[shard]
                    pipe.evalsha(script.sha, len(declared), *declared, prefix, *args)
                add_waits(pipe, self.durability)
                replies = await pipe.execute(raise_on_error=False)
            answers = replies[: len(calls)]
            if any(isinstance(a, NoScriptError) for a in answers):  # a new or restarted
                await client.script_load(script.script)  # primary: none of them ran
                continue
            for i, answer in enumerate(answers):
                if isinstance(answer, Exception):
                    if not each_error:
                        raise answer
                    # as store_errors would have raised it (the cause says whether it ran)
                    error = StoreUnavailable(
                        f"Redis at {_redact(self.url)}: {type(answer).__name__}"
                    )
                    error.__cause__ = answer
                    answers[i] = error
            check_waits(replies[len(calls) :], self.durability, _redact(self.url))
            return list(answers)
        raise StoreUnavailable(f"Redis at {_redact(self.url)}: script {name} would not load")

    async def _write(self, *commands: tuple[Any, ...], shard: int = 0) -> list[Any]:
        """Direct writes (not scripts) to one shard in one pipeline, waiting for the
        replicas like a script under replica durability. Their answers."""
        client = await self._data(shard)
        async with client.pipeline(transaction=False) as pipe:
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

    async def _write_each(self, commands: list[tuple[int, tuple[str, ...]]]) -> None:
        """`_write` of (shard, command)s: one pipeline per shard, the shards at once."""
        by_shard: dict[int, list[tuple[str, ...]]] = {}
        for shard, command in commands:
            by_shard.setdefault(shard, []).append(command)
        await asyncio.gather(*(self._write(*c, shard=i) for i, c in by_shard.items()))

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
        """Dedup, route and merge every event of one request, atomically per shard. The
        script dates each event by Redis's clock: its receipt, and its version when the
        sender gave no time or one later than receipt + `max_clock_skew_ms`. `log`, the
        request's event-log row (bridge.eventlog), is written in the same call with the
        verdicts its events got, bounded by `log_bounds` (max entries, keep ms); when its
        events went to several shards, in a call of its own after them."""
        head = (dedup_ttl_s, coalesce_ms, max_clock_skew_ms)
        if not events:  # nothing to route: the request's log row alone
            if log is not None:
                await self.log([_logged(log, [])], log_bounds)
            return AcceptResult(0, 0, 0)
        if not self.shards.sharded:  # one script call, its log row with it: no routing
            return _accepted(await self._accept_in(0, events, head, log, log_bounds))
        events = list(events)
        codes: list[str] = [""] * len(events)
        todo = list(range(len(events)))
        logged = False  # the request's log row went with its events (it is written once)
        for _ in range(3):  # sharded: an event parked as its link was set goes round again
            routes = await self._route([events[i] for i in todo])
            by_shard: dict[int, list[int]] = {}
            for i, (shard, event) in zip(todo, routes, strict=True):
                events[i] = event
                by_shard.setdefault(shard, []).append(i)
            with_log = not logged and log is not None and len(by_shard) == 1
            with_log = with_log and len(todo) == len(events)
            logged = logged or with_log
            calls = [
                self._accept_in(shard, [events[i] for i in idx], head, log if with_log else None,
                                log_bounds)
                for shard, idx in by_shard.items()
            ]  # fmt: skip
            for idx, got in zip(by_shard.values(), await asyncio.gather(*calls), strict=True):
                for i, code in zip(idx, got, strict=True):
                    codes[i] = code
            todo = [i for i, code in enumerate(codes) if code == "r"]
            if not todo:
                break
        else:
            raise StoreUnavailable(f"Redis at {_redact(self.url)}: a link kept moving")
        if log is not None and not logged:
            await self.log([_logged(log, codes)], log_bounds)
        return _accepted(codes)

    async def _route(self, events: Sequence[Routed]) -> list[tuple[int, Routed]]:
        """Per event, the shard it goes to and the event as sent there: its conversation's.
        Sharded, an event named by an external id is looked up in its link's shard first
        (reads, at once) and sent to the linked conversation, else to its fallback, else to
        the link's shard to wait there (accept.lua looks again, in the script that parks it)."""

        async def linked(ev: Routed) -> tuple[int, Routed]:
            shard = self.shards.of_link(ev.source, ev.external_id)
            with store_errors(self.url):
                found = await (await self._data(shard)).hget(
                    self.key_in(shard, "links", ev.source), ev.external_id
                )
            ck = str(found or ev.fallback_ck)
            if not ck:
                return shard, ev
            return self._ck_shard(ck), replace(ev, ck=ck)

        # only an event named by an external id reads its link (all such at once)
        looked = iter(await asyncio.gather(*(linked(ev) for ev in events if not ev.ck)))
        return [(self._ck_shard(ev.ck), ev) if ev.ck else next(looked) for ev in events]

    async def _accept_in(
        self,
        shard: int,
        events: Sequence[Routed],
        head: tuple[int, int, int],
        log: list[Any] | None,
        log_bounds: tuple[int, int],
    ) -> list[str]:
        """accept.lua in one shard; one letter per event."""
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
        group = await self._accept_group(head, log_bounds, shard)
        codes = await group.submit([(shard, row) for row in rows], nbytes)
        if log is not None:
            codes = codes[:-1]  # the log row's answer ('')
        return [str(code) for code in codes]

    # --- delivery ---

    async def take(
        self, n: int, *, lease_ms: int, rate_limit: float
    ) -> tuple[list[Work], int | None]:
        """Up to `n` due conversations, each now leased to us; and in how many ms the next
        one is due (on Redis's clock, so this host's own clock does not matter). Sharded,
        the shards are visited turn by turn from where the last take stopped (a busy shard
        does not starve the others), skipping those known to have nothing due yet."""
        if not self.shards.sharded:
            args = [n, lease_ms, uuid.uuid4().hex, repr(float(rate_limit))]
            return await self._taken(await self._run("take", args))
        allowed, state = n, "closed"
        gated = rate_limit > 0 or self._circuit != "closed"
        if gated:
            allowed, wait_ms, state = await self._admit(n, lease_ms, rate_limit)
            if allowed == 0:
                return [], int(wait_ms)
        now = time.monotonic()
        if now - self._looked_at >= LOOK_EVERY_S:
            await self._look(now)
        work: list[Work] = []
        count = self.shards.count
        start, self._cursor = self._cursor, (self._cursor + 1) % count
        ready = [(start + i) % count for i in range(count)]
        ready = [shard for shard in ready if self._due_at[shard] <= now]
        while ready and len(work) < allowed:
            # the wanted number split over as many ready shards as it spans, asked at once
            want = allowed - len(work)
            asked = ready[:want]
            ready = ready[len(asked) :]
            shares = [want // len(asked) + (i < want % len(asked)) for i in range(len(asked))]
            marks = [self._due_at[shard] for shard in asked]
            found = await self._take_each(list(zip(asked, shares, strict=True)), lease_ms)
            failed: BaseException | None = None
            for shard, share, mark, result in zip(asked, shares, marks, found, strict=True):
                if isinstance(result, BaseException):
                    failed = result
                    continue
                got, nxt = result
                work += got
                at = now + (nxt / 1000 if nxt is not None else LOOK_EVERY_S * 10)
                # a wake or a settle that marked the shard meanwhile stands
                self._due_at[shard] = (
                    at if self._due_at[shard] == mark else min(at, self._due_at[shard])
                )
                if len(got) >= share:  # it may hold more
                    self._due_at[shard] = now
                    ready.append(shard)
            if failed is not None:
                if not work:
                    raise failed
                break  # the others' work now; the failed shard is looked at again next take
        if gated:
            with contextlib.suppress(StoreUnavailable):  # the work is leased: it goes out
                await self._run("gate", ["", "after", len(work), allowed,
                                         repr(float(rate_limit)), state])  # fmt: skip
        soonest = min(self._due_at) - time.monotonic()
        return work, max(int(soonest * 1000), 0) if soonest < LOOK_EVERY_S * 5 else None

    async def _take_each(
        self, wanted: list[tuple[int, int]], lease_ms: int
    ) -> list[tuple[list[Work], int | None] | BaseException]:
        """Sharded: take.lua in each (shard, how many), one pipeline per server, the servers
        at once; a shard's error is its answer, so what the others leased is kept, not
        orphaned. A shard answered as not run (its slot moved: a failover) goes once more
        alone, on the fresh map (where a lone call's own retry applies)."""

        def args(i: int) -> list[Any]:
            return [wanted[i][1], lease_ms, uuid.uuid4().hex, "0.0"]

        out: list[Any] = [None] * len(wanted)
        by_server: dict[int, list[int]] = {}
        for i, (shard, _) in enumerate(wanted):
            try:
                by_server.setdefault(await self._server_of(shard), []).append(i)
            except StoreUnavailable as exc:  # its server is not known now: the others go on
                out[i] = exc
        groups = list(by_server.values())
        answers = await asyncio.gather(
            *(self._run_each("take", [(wanted[i][0], args(i)) for i in idx], each_error=True)
              for idx in groups),
            return_exceptions=True,
        )  # fmt: skip
        for idx, got in zip(groups, answers, strict=True):
            for k, i in enumerate(idx):
                out[i] = got if isinstance(got, BaseException) else got[k]
        again = [
            i for i, answer in enumerate(out)
            if isinstance(answer, StoreUnavailable) and isinstance(answer.__cause__, Exception)
            and self._servers.failed(answer.__cause__)
        ]  # fmt: skip
        retried = await asyncio.gather(
            *(self._run("take", args(i), wanted[i][0]) for i in again), return_exceptions=True
        )
        for i, answer in zip(again, retried, strict=True):
            out[i] = answer
        for i, answer in enumerate(out):
            if not isinstance(answer, BaseException):
                try:
                    out[i] = await self._taken(answer)
                except Exception as exc:  # one shard's odd answer: the others' work stands
                    error = StoreUnavailable(
                        f"Redis at {_redact(self.url)}: a take's answer "
                        f"could not be read ({type(exc).__name__})"
                    )
                    error.__cause__ = exc
                    out[i] = error
        return out

    async def _taken(self, answer: Any) -> tuple[list[Work], int | None]:
        """A take.lua answer as work, and in how many ms the shard's next is due."""
        items, nxt, redis_now = answer
        offset = self.clock_offset_ms = int(redis_now) - now_ms()
        if sum(len(item[2]) + len(item[5]) for item in items) > 2 * OFFLOAD_ENTRIES:
            work = await asyncio.to_thread(_works, items, offset)  # keep the loop responsive
        else:
            work = _works(items, offset)
        return work, (None if int(nxt) < 0 else int(nxt))

    async def _admit(self, n: int, lease_ms: int, rate_limit: float) -> tuple[int, int, str]:
        """Sharded: how many the shared circuit and rate limit let us take (shard 0)."""
        allowed, wait_ms, state = await self._run(
            "gate", ["", "admit", n, repr(float(rate_limit)), lease_ms]
        )
        self._circuit = str(state)
        return int(allowed), int(wait_ms), str(state)

    async def _look(self, now: float) -> None:
        """Sharded: every shard's first due time (what the wakes missed: they are not kept)
        and the shared circuit's state."""
        self._looked_at = now
        heads = await self._heads()
        self._circuit = await self._shared_circuit()
        for shard, (due, _, redis_ms) in enumerate(heads):
            # only ever sooner: a wake since the read stands (a take corrects either way)
            if due is not None:
                at = now + max(due - redis_ms, 0) / 1000
                self._due_at[shard] = min(self._due_at[shard], at)

    async def _heads(self, max_age_s: float = 0.0) -> list[tuple[float | None, float | None, int]]:
        """Per shard: its first due time, its first lease expiry (None: none) and its
        server's clock (ms), read in one pipeline per server; a read under `max_age_s`
        old serves again (the sweep takes the take's look's, both every 2 s)."""
        if time.monotonic() - self._heads_read[0] < max_age_s:
            return self._heads_read[1]
        heads = await self._read_heads()
        self._heads_read = (time.monotonic(), heads)
        return heads

    @_unavailable_as_error
    async def _shared_circuit(self) -> str:
        state = await (await self._data(0)).hget(self.key("g", "circuit"), "state")
        return str(state or "closed")

    @_unavailable_as_error  # after a failover: the map read again, and once more
    async def _read_heads(self) -> list[tuple[float | None, float | None, int]]:
        servers: dict[int, tuple[Any, list[int]]] = {}
        for shard in range(self.shards.count):
            client = await self._data(shard)
            servers.setdefault(id(client), (client, []))[1].append(shard)

        async def one(client: Any, shards: list[int]) -> list[Any]:
            async with client.pipeline(transaction=False) as pipe:
                pipe.time()
                for shard in shards:
                    pipe.zrange(self.key_in(shard, "due"), 0, 0, withscores=True)
                    pipe.zrange(self.key_in(shard, "inflight"), 0, 0, withscores=True)
                return list(await pipe.execute())

        found = await asyncio.gather(*(one(c, shards) for c, shards in servers.values()))
        out: list[tuple[float | None, float | None, int]] = [(None, None, 0)] * self.shards.count
        for (_, shards), answers in zip(servers.values(), found, strict=True):
            clock = answers[0]
            redis_ms = _ms(clock)
            for i, shard in enumerate(shards):
                due, held = answers[1 + 2 * i], answers[2 + 2 * i]
                out[shard] = (
                    float(due[0][1]) if due else None,
                    float(held[0][1]) if held else None,
                    redis_ms,
                )
        return out

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
        entries, keep ms). Returns that dead letter's id, else ''. Sharded, the attempt's
        verdict for the shared circuit is recorded in shard 0 (lua/gate.lua), after."""
        d = settings
        options = SettleOptions(
            coalesce_ms=d.coalesce_ms,
            array_cache_ms=int(d.array_cache_s * 1000),
            circuit_window=d.circuit_window,
            circuit_failure_permille=int(d.circuit_failure_ratio * 1000),
            circuit_cooldown_ms=int(d.circuit_cooldown_s * 1000),
            in_doubt_quiet_ms=int(d.in_doubt_quiet_s * 1000),
            log_max_events=self._per_shard(log_bounds)[0],
            log_keep_ms=log_bounds[1],
        )
        shard = self._ck_shard(work.ck)
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
            circuit="" if self.shards.sharded else outcome.circuit,
            sent=[x for e in outcome.sent for x in (e.name, e.raw)],
            in_doubt=outcome.in_doubt,
            log=[] if log is None else [0, log[1], log[2], *log[4:]],
        )
        blob: bytes = b"" if log is None else log[3]
        nbytes = sum(len(e.raw) for e in outcome.sent) + len(row.arrays) + len(blob)
        group = await self._settle_group(_settle_options(options), shard)
        (dead_id,) = await group.submit([(shard, row, blob)], nbytes)
        # when this process's takes look in the shard again: at the retry, or, after a
        # PATCH, once what came meanwhile has coalesced (no wake comes for either)
        wait_ms = outcome.retry_in_ms if outcome.kind in ("retry", "wait") else d.coalesce_ms
        self._due_at[shard] = min(self._due_at[shard], time.monotonic() + wait_ms / 1000)
        if self.shards.sharded and outcome.circuit:
            with contextlib.suppress(StoreUnavailable):  # a verdict lost is not an attempt lost
                await self._note_verdict(outcome.circuit, settings)
        return str(dead_id)

    async def _settle_group(
        self, options: str, shard: int
    ) -> GroupCommit[tuple[int, SettleRow, bytes], Any]:
        """Concurrent settles on one server share one round trip: one settle.lua call per
        shard among them, pipelined (`_run_each`), with the rows' event-log blobs sent apart
        (never decoded by the script): ARGV[3 + n] is the n-th logged row's `d` field."""
        server = await self._server_of(shard)
        group = self._groups.get(("settle", (options,), server))
        if group is None:

            async def send(items: list[tuple[int, SettleRow, bytes]]) -> list[Any]:
                by_shard: dict[int, list[tuple[SettleRow, bytes]]] = {}
                for at, row, blob in items:
                    by_shard.setdefault(at, []).append((row, blob))
                calls = []
                for at, rows in by_shard.items():
                    settles: list[SettleRow] = []
                    blobs: list[bytes] = []
                    for row, blob in rows:
                        if row.log:
                            blobs.append(blob)
                            row = replace(row, log_blob=len(blobs))
                        settles.append(row)
                    calls.append((at, [options, orjson.dumps(settles), *blobs]))
                answers = await self._run_each("settle", calls)
                found = {at: iter(answer) for (at, _), answer in zip(calls, answers, strict=True)}
                return [next(found[at]) for at, _, _ in items]

            group = self._groups[("settle", (options,), server)] = GroupCommit(send)
        return group

    async def renew(self, held: Sequence[tuple[str, str]], lease_ms: int) -> list[bool]:
        """Extend each (ck, token) lease still ours; for each, whether it was."""
        by_shard: dict[int, list[int]] = {}
        for i, (ck, _) in enumerate(held):
            by_shard.setdefault(self._ck_shard(ck), []).append(i)

        async def one(shard: int, idx: list[int]) -> list[Any]:
            pairs = [x for i in idx for x in held[i]]
            return list(await self._run("renew", [lease_ms, *pairs], shard))

        # sharded: one unreachable primary does not keep the other shards' leases from
        # being renewed; its own read as not renewed (their work stops at the next fence)
        answers = await asyncio.gather(
            *(one(s, idx) for s, idx in by_shard.items()), return_exceptions=True
        )
        failures = [a for a in answers if isinstance(a, BaseException)]
        if failures and len(failures) == len(answers):
            raise failures[0]
        out = [False] * len(held)
        for idx, flags in zip(by_shard.values(), answers, strict=True):
            if isinstance(flags, BaseException):
                continue
            for i, flag in zip(idx, flags, strict=True):
                out[i] = int(flag) == 1
        return out

    async def gate(self, account: str, *, rate: float, probe_ms: int) -> int:
        """0 when `account` may be sent to now (its own circuit and rate limit), else how
        long (ms, on Redis's clock like every due time) to wait before trying again."""
        return int(await self._run("gate", [account, "ask", repr(float(rate)), probe_ms]))

    async def gate_record(self, account: str, verdict: str, settings: DeliverySettings) -> str:
        """Record an attempt's verdict ('ok' or 'fail') in `account`'s own circuit ('':
        the shared one, sharded); concurrent records share one call."""
        return await self._record(account, [verdict], settings)

    async def _note_verdict(self, verdict: str, settings: DeliverySettings) -> None:
        """Sharded: an attempt's verdict for the shared circuit (shard 0). While it is
        closed, successes wait up to VERDICTS_EVERY_S and go together (they only dilute
        the failures in the window: one call, not one per PATCH); a failure goes at once,
        after the successes before it."""
        self._verdicts.append(verdict)
        if verdict == "ok" and self._circuit == "closed":
            if self._verdicts_later is None:
                self._verdicts_later = asyncio.create_task(self._send_verdicts_later(settings))
            return
        await self._send_verdicts(settings)

    async def _send_verdicts_later(self, settings: DeliverySettings) -> None:
        await asyncio.sleep(VERDICTS_EVERY_S)
        self._verdicts_later = None
        with contextlib.suppress(StoreUnavailable):  # a few successes lost: no harm
            await self._send_verdicts(settings)

    async def _send_verdicts(self, settings: DeliverySettings) -> None:
        verdicts, self._verdicts = self._verdicts, []
        if verdicts:
            await self._record("", verdicts, settings)

    async def _record(self, account: str, verdicts: list[str], settings: DeliverySettings) -> str:
        d = settings
        head = (
            account,
            "record",
            d.circuit_window,
            int(d.circuit_failure_ratio * 1000),
            int(d.circuit_cooldown_s * 1000),
        )
        group = self._groups.get(("gate", head))
        if group is None:

            async def send(verdicts: list[str]) -> list[str]:
                name, op, *rest = head
                state = str(await self._run("gate", [name, op, ",".join(verdicts), *rest]))
                if name == "":
                    self._circuit = state
                return [state] * len(verdicts)

            group = self._groups[("gate", head)] = GroupCommit(send)
        states = await group.submit(verdicts)
        return str(states[-1])

    async def sweep(self, quiet_ms: int) -> int:
        # only where a lease has run out: the leases' heads are read first (one pipeline per
        # server; sharded, the take's look's read serves), the script runs where one has
        heads = await self._heads(max_age_s=LOOK_EVERY_S if self.shards.sharded else 0.0)
        shards = [i for i, (_, held, now) in enumerate(heads) if held is not None and held <= now]
        swept = await asyncio.gather(*(self._run("sweep", [quiet_ms], i) for i in shards))
        for i, n in zip(shards, swept, strict=True):
            if int(n):
                self._due_at[i] = 0.0
        return sum(int(n) for n in swept)

    async def wait_for_work(self, waker: Store, timeout_s: float) -> None:
        """Until ingest signals new work, or `timeout_s` passes: one shard, a block on its
        wake list (on `waker`'s own client); sharded, the next wake published (it names the
        shard, which the next take then visits)."""
        timeout_s = max(timeout_s, 0.01)
        with store_errors(self.url):
            if not self.shards.sharded:
                await (await waker._data(0)).blpop([self.key("wake")], timeout=timeout_s)
                return
            try:
                if self._wakes is None:
                    self._wakes = (await waker._data(0)).pubsub(ignore_subscribe_messages=True)
                    await self._wakes.subscribe(WAKE_CHANNEL)
                deadline = time.monotonic() + timeout_s
                woken = False
                while not woken and (left := deadline - time.monotonic()) > 0:
                    # None also for a subscription's own confirmation: wait on till the end
                    message = await self._wakes.get_message(timeout=left)
                    while message is not None:
                        woken = True
                        shard = int(message["data"])
                        if 0 <= shard < self.shards.count:
                            self._due_at[shard] = 0.0
                        message = await self._wakes.get_message(timeout=0)
            except (RedisError, OSError, RuntimeError) as exc:
                # subscribe again next time (another node, after a failover): this one closed
                wakes, self._wakes = self._wakes, None
                if wakes is not None:
                    with contextlib.suppress(Exception):
                        await wakes.aclose()
                waker._servers.failed(exc)
                if isinstance(exc, RuntimeError):  # redis-py: a pubsub that lost its connection
                    raise RedisConnectionError(str(exc)) from exc
                raise

    # --- dead letters ---

    @_unavailable_as_error
    async def dead_letter_ids(self, limit: int = 1000) -> list[str]:
        """The oldest `limit` dead letters' ids, oldest first (every shard's, merged)."""

        parts = await self._each_shard(
            lambda r, i: r.zrange(self.key_in(i, "dlq"), 0, limit - 1, withscores=True)
        )
        merged = sorted(
            ((str(i), float(t)) for part in parts for i, t in part), key=lambda x: (x[1], x[0])
        )
        return [i for i, _ in merged[:limit]]

    @_unavailable_as_error
    async def dead_letter(self, dl_id: str) -> DeadLetter:
        shard = self._dl_shard(dl_id)
        r = await self._data(shard)
        rec = await r.hgetall(self.key_in(shard, "dl", dl_id))
        if not rec:
            raise NotFound(f"no dead letter {dl_id!r} (see `convo-bridge dlq list`)")

        flat = await r.hgetall(self.key_in(shard, "dle", dl_id))
        entries = sorted((decode(k, v) for k, v in flat.items()), key=lambda e: e.version)
        attempts = [
            orjson.loads(a) for a in await r.lrange(self.key_in(shard, "dla", dl_id), 0, -1)
        ]
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
        it (`rf:`), so a replay that fails again points back to the letter it came from.
        Sharded, a letter that waited for its link in the link's shard is merged into its
        conversation's shard, then dropped (merge.lua: a rerun after a failure in between
        merges nothing newer twice)."""
        if not ids:
            return {}
        before = await self._replay_origins(ids)
        by_shard: dict[int, list[str]] = {}
        for dl_id in ids:
            by_shard.setdefault(self._dl_shard(dl_id), []).append(dl_id)

        async def one(shard: int, group: list[str]) -> list[str]:
            answers = await self._run("replay", [coalesce_ms, *group], shard)
            self._due_at[shard] = 0.0
            out = []
            for dl_id, answer in zip(group, answers, strict=True):
                if answer == "linked":
                    answer = await self._replay_linked(dl_id, shard, coalesce_ms)
                out.append(str(answer))
            return out

        found = await asyncio.gather(*(one(s, g) for s, g in by_shard.items()))
        result = {
            i: r for group, rs in zip(by_shard.values(), found, strict=True)
            for i, r in zip(group, rs, strict=True)
        }  # fmt: skip
        result = {i: result[i] for i in ids}
        await self._note_replays({i: before[i] for i, r in result.items() if r == "replayed"})
        return result

    async def _replay_linked(self, dl_id: str, shard: int, coalesce_ms: int) -> str:
        """Sharded: an unroutable letter (in its link's shard) whose link is set now."""
        with store_errors(self.url):
            r = await self._data(shard)
            rec = await r.hmget(self.key_in(shard, "dl", dl_id), ["source", "external_id"])
            if rec[0] is None:
                return "missing"
            source, external_id = str(rec[0]), unquote(str(rec[1]))
            ck = await r.hget(self.key_in(shard, "links", source), external_id)
            if not ck:
                return "unroutable"
            flat = await r.hgetall(self.key_in(shard, "dle", dl_id))
        entries = orjson.dumps([x for pair in flat.items() for x in pair]).decode()
        target = self._ck_shard(str(ck))
        await self._run("merge", [coalesce_ms, str(ck), entries], target)
        self._due_at[target] = 0.0
        await self._run("purge", [dl_id], shard)
        return "replayed"

    async def _read_letters(
        self, ids: Sequence[str], queue: Callable[[Any, int, str], None]
    ) -> list[list[Any]]:
        """Per dead letter id, the answers to what `queue(pipe, shard, id)` asks: one
        pipeline per shard the ids are in, all at once (not a round trip per id)."""
        by_shard: dict[int, list[int]] = {}
        for i, dl_id in enumerate(ids):
            by_shard.setdefault(self._dl_shard(dl_id), []).append(i)

        async def one(shard: int, idx: list[int]) -> list[Any]:
            async with (await self._data(shard)).pipeline(transaction=False) as pipe:
                for i in idx:
                    queue(pipe, shard, ids[i])
                return list(await pipe.execute())

        parts = await asyncio.gather(*(one(s, idx) for s, idx in by_shard.items()))
        out: list[list[Any]] = [[] for _ in ids]
        for idx, answers in zip(by_shard.values(), parts, strict=True):
            each = len(answers) // len(idx)
            for k, i in enumerate(idx):
                out[i] = answers[k * each : (k + 1) * each]
        return out

    @_unavailable_as_error
    async def _replay_origins(self, ids: Sequence[str]) -> dict[str, tuple[str, list[str]]]:
        """Per id: its conversation and its events' `source:event id`s, read before replay."""

        def queue(pipe: Any, shard: int, dl_id: str) -> None:
            pipe.hget(self.key_in(shard, "dl", dl_id), "ck")
            pipe.hgetall(self.key_in(shard, "dle", dl_id))

        found = {}
        for dl_id, (ck, flat) in zip(ids, await self._read_letters(ids, queue), strict=True):
            events = sorted(
                {f"{e.source}:{e.event_id}" for e in (decode(k, v) for k, v in flat.items())}
            )
            found[dl_id] = (ck or "", events[:200])
        return found

    @_unavailable_as_error
    async def _note_replays(self, replayed: dict[str, tuple[str, list[str]]]) -> None:
        if not replayed:
            return
        now = str(await self.redis_now_ms())
        commands: list[tuple[int, tuple[str, ...]]] = []
        for dl_id, (ck, events) in replayed.items():
            at = self._dl_shard(dl_id)
            commands.append((at, ("HSET", self.key_in(at, "dlh", dl_id), now, "replayed")))
            commands.append(
                (at, ("EXPIRE", self.key_in(at, "dlh", dl_id), str(keys.HISTORY_TTL_S)))
            )
            if ck:
                origin = orjson.dumps({"id": dl_id, "events": events}).decode()
                shard = self._ck_shard(ck)
                rf = self.key_in(shard, "rf", ck)
                commands.append((shard, ("SET", rf, origin, "EX", str(keys.HISTORY_TTL_S))))
        await self._write_each(commands)

    @_unavailable_as_error
    async def note_dead_letter(self, ck: str, dead_id: str, events: Sequence[str]) -> str:
        """A new dead letter of conversation `ck` (with these `source:event id`s) that
        carries events of a replayed letter points back to it; that letter's history says
        so. The origin's id, or ''."""
        shard = self._ck_shard(ck)
        raw = await (await self._data(shard)).get(self.key_in(shard, "rf", ck))
        if not raw:
            return ""
        origin = orjson.loads(raw)
        if not set(origin.get("events", ())) & set(events):
            return ""
        origin_id = str(origin["id"])
        at, dead_at = self._dl_shard(origin_id), self._dl_shard(dead_id)
        now = str(await self.redis_now_ms())
        await self._write_each(
            [
                (dead_at, ("HSET", self.key_in(dead_at, "dl", dead_id), "from", origin_id)),
                (
                    at,
                    ("HSET", self.key_in(at, "dlh", origin_id), now, f"failed again as {dead_id}"),
                ),
                (at, ("EXPIRE", self.key_in(at, "dlh", origin_id), str(keys.HISTORY_TTL_S))),
                (shard, ("DEL", self.key_in(shard, "rf", ck))),
            ]
        )
        return origin_id

    @_unavailable_as_error
    async def replay_history(self, dl_id: str) -> dict[str, str]:
        """A dead letter's replays and what became of them: epoch ms -> what."""
        shard = self._dl_shard(dl_id)
        return dict(await (await self._data(shard)).hgetall(self.key_in(shard, "dlh", dl_id)))

    @_unavailable_as_error
    async def retry_now(self, ck: str) -> bool:
        """A conversation's scheduled retry, due now instead; False when none was scheduled."""
        shard = self._ck_shard(ck)
        r = await self._data(shard)
        now = _ms(await r.time())  # due times are on the shard's server's clock
        score = await r.zscore(self.key_in(shard, "due"), ck)
        if score is None or score <= now:
            return False
        wake: list[tuple[str, ...]] = (
            [("PUBLISH", WAKE_CHANNEL, str(shard))]
            if self.shards.sharded
            else [("LPUSH", self.key("wake"), "1"), ("LTRIM", self.key("wake"), "0", "63")]
        )
        await self._write(
            ("ZADD", self.key_in(shard, "due"), "XX", str(now), ck), *wake, shard=shard
        )
        self._due_at[shard] = 0.0
        return True

    async def purge(self, ids: Sequence[str]) -> int:
        by_shard: dict[int, list[str]] = {}
        for dl_id in ids:
            by_shard.setdefault(self._dl_shard(dl_id), []).append(dl_id)
        counts = await asyncio.gather(*(self._run("purge", g, s) for s, g in by_shard.items()))
        return sum(int(n) for n in counts)

    @_unavailable_as_error
    async def dead_letter_reasons(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for raw in await self._each_shard(lambda r, i: r.hgetall(self.key_in(i, "dlr"))):
            for k, v in raw.items():
                out[k] = out.get(k, 0) + int(v)
        return {k: v for k, v in out.items() if v > 0}

    async def _each_shard(self, read: Callable[[Any, int], Awaitable[Any]]) -> list[Any]:
        """`read(client, shard)` for every shard, all at once; their answers in shard order."""

        async def one(shard: int) -> Any:
            return await read(await self._data(shard), shard)

        return list(await asyncio.gather(*(one(i) for i in range(self.shards.count))))

    # --- links ---

    async def link(
        self, source: str, external_id: str, agent_id: str, convo_id: str, *, coalesce_ms: int
    ) -> str:
        ck = conversation_key(agent_id, convo_id)
        shard = self.shards.of_link(source, external_id)
        args = [coalesce_ms, source, external_id, ext_key(external_id), ck]
        res = str(await self._run("link", args, shard))
        if not self.shards.sharded:
            return res
        waiting, _ = await self.waiting_for_link(source, external_id)
        if waiting is None:
            return "linked"
        return await self._replay_linked(waiting, shard, coalesce_ms)

    # --- applied entries ---

    async def clear_applied(self, ck: str, what: str) -> list[str]:
        """Drop applied entries of `ck` so the next event for them wins (lua/clear.lua):
        'future' (dated after Redis's now), a field name, or one change's name."""
        names = await self._run("clear", [ck, what], self._ck_shard(ck))
        return sorted(str(name) for name in names)

    @_unavailable_as_error
    async def get_link(self, source: str, external_id: str) -> tuple[str, str]:
        shard = self.shards.of_link(source, external_id)
        ck = await (await self._data(shard)).hget(self.key_in(shard, "links", source), external_id)
        if ck is None:
            raise NotFound(f"no link for {source} {external_id!r}")
        return split_key(ck)

    @_unavailable_as_error
    async def delete_link(self, source: str, external_id: str) -> bool:
        shard = self.shards.of_link(source, external_id)
        command = ("HDEL", self.key_in(shard, "links", source), external_id)
        [deleted] = await self._write(command, shard=shard)
        return bool(deleted)

    @_unavailable_as_error
    async def waiting_for_link(self, source: str, external_id: str) -> tuple[str | None, int]:
        """The unroutable dead letter waiting for this link, if any, and its change count."""
        shard = self.shards.of_link(source, external_id)
        r = await self._data(shard)
        waiting = await r.get(self.key_in(shard, "ux", source, ext_key(external_id)))
        if waiting is None:
            return None, 0
        return str(waiting), int(await r.hlen(self.key_in(shard, "dle", waiting)))

    @_unavailable_as_error
    async def set_link_only(
        self, source: str, external_id: str, agent_id: str, convo_id: str
    ) -> None:
        """Set a link without replaying what waits for it (an RQ job does that)."""
        ck = conversation_key(agent_id, convo_id)
        shard = self.shards.of_link(source, external_id)
        await self._write(
            ("HSET", self.key_in(shard, "links", source), external_id, ck), shard=shard
        )

    @_unavailable_as_error
    async def links(self, sources: Iterable[str]) -> list[dict[str, str]]:
        out = []
        for source_name in sources:

            def read(r: Any, shard: int, name: str = source_name) -> Awaitable[Any]:
                return r.hgetall(self.key_in(shard, "links", name))  # type: ignore[no-any-return]

            for part in await self._each_shard(read):
                for ext, ck in part.items():
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
        shard = self._ck_shard(ck)
        async with (await self._data(shard)).pipeline(transaction=False) as pipe:
            pipe.hgetall(self.key_in(shard, "p", ck))
            pipe.hgetall(self.key_in(shard, "hw", ck))
            pipe.lrange(self.key_in(shard, "att", ck), 0, -1)
            pipe.zscore(self.key_in(shard, "due"), ck)
            pipe.zscore(self.key_in(shard, "inflight"), ck)
            pipe.exists(self.key_in(shard, "lease", ck))
            pipe.zrange(self.key_in(shard, "dlq"), 0, -1)
            pipe.time()
            answers = await pipe.execute()
        pending, applied, attempts, due, inflight, leased, dl_ids, clock = answers
        suspended = await self.delivery_paused()
        now = _ms(clock)
        return ConversationState(
            pending, applied, attempts, due, inflight, bool(leased), bool(suspended), dl_ids, now
        )

    @_unavailable_as_error
    async def dead_letters_of(self, ck: str, ids: Sequence[str]) -> list[str]:
        """Those of `ids` whose dead letter is conversation `ck`'s."""
        if not ids:
            return []

        def queue(pipe: Any, shard: int, dl_id: str) -> None:
            pipe.hget(self.key_in(shard, "dl", dl_id), "ck")

        found = await self._read_letters(ids, queue)
        return [i for i, (c,) in zip(ids, found, strict=True) if c == ck]

    # --- charts ---

    @_unavailable_as_error
    async def minute_figures(self, minutes: Sequence[int]) -> list[dict[str, str]]:
        """The `m:<minute>` hashes of these epoch minutes ({} where none was written);
        sharded, every shard's added up (`qs` and `tm`, times, the latest of them)."""

        async def read(r: Any, shard: int) -> list[dict[str, str]]:
            async with r.pipeline(transaction=False) as pipe:
                for minute in minutes:
                    pipe.hgetall(self.key_in(shard, "m", str(minute)))
                return list(await pipe.execute())

        parts = await self._each_shard(read)
        if len(parts) == 1:
            return list(parts[0])
        out: list[dict[str, str]] = []
        for n in range(len(minutes)):
            total: dict[str, float] = {}
            for part in parts:
                for k, v in part[n].items():
                    if k in ("qs", "tm"):
                        total[k] = max(total.get(k, 0.0), float(v))
                    else:
                        total[k] = total.get(k, 0.0) + float(v)
            out.append({k: f"{v:g}" if v != int(v) else str(int(v)) for k, v in total.items()})
        return out

    # --- status ---

    @_unavailable_as_error
    async def redis_now_ms(self) -> int:
        """Redis's clock (shard 0's server), the one every stored time is on."""
        return _ms(await (await self._data(0)).time())

    async def clock_ms(self) -> int:
        """Redis's clock (epoch ms), for callers outside the store: the scripts' NOW. (The
        layout test keeps `store.redis…` names out of other modules.)"""
        return await self.redis_now_ms()

    @_unavailable_as_error
    async def status(self) -> StatusReport:
        """The queue's figures (`workers_alive` is left to bridge.status.status_report),
        every shard's added up (on shard 0's server's clock: one read of it, then one
        pipeline per shard); the circuit is the shared one (shard 0; `g:` when sharded)."""
        now = await self.redis_now_ms()
        bucket = now // 10_000
        circuit_key = self.key("g", "circuit") if self.shards.sharded else self.key("circuit")

        async def read(r: Any, shard: int) -> list[Any]:
            due = self.key_in(shard, "due")
            async with r.pipeline(transaction=False) as pipe:
                pipe.zcount(due, "-inf", now)
                pipe.zcount(due, f"({now}", "+inf")
                pipe.zrangebyscore(due, f"({now}", "+inf", start=0, num=1, withscores=True)
                pipe.zcard(self.key_in(shard, "inflight"))
                pipe.zcard(self.key_in(shard, "dlq"))
                pipe.hgetall(self.key_in(shard, "dlr"))
                for what in _RATE_KEYS:
                    for b in range(bucket - 5, bucket + 1):
                        pipe.get(self.key_in(shard, "r", what, str(b)))
                if shard == 0:
                    pipe.hgetall(circuit_key)
                return list(await pipe.execute())

        parts = await self._each_shard(read)
        ready = scheduled = inflight = dead = 0
        nxt: list[float] = []
        reasons: dict[str, int] = {}
        rates = dict.fromkeys(_RATES, 0)
        for res in parts:
            ready += int(res[0])
            scheduled += int(res[1])
            nxt += [float(res[2][0][1])] if res[2] else []
            inflight += int(res[3])
            dead += int(res[4])
            for k, v in res[5].items():
                reasons[k] = reasons.get(k, 0) + int(v)
            counters = res[6:]
            for i, name in enumerate(_RATES):
                rates[name] += sum(int(v or 0) for v in counters[i * 6 : (i + 1) * 6])
        circuit = parts[0][-1]
        state = circuit.get("state", "closed")
        return StatusReport(
            conversations_waiting=ready,
            scheduled_retries=scheduled,
            next_retry_at=int(min(nxt)) if nxt else None,
            in_flight=inflight,
            dead_letters=dead,
            dead_letters_by_reason={k: v for k, v in reasons.items() if v > 0},
            circuit=Circuit(
                state=state,
                until_ms=int(circuit.get("until", "0") or 0) if state != "closed" else None,
                opened=int(circuit.get("opened", "0")),
            ),
            last_minute=Rates(**rates),
        )

    @_unavailable_as_error
    async def account_circuits(self, names: Iterable[str]) -> dict[str, Circuit]:
        """Each named account's own circuit (acct:<name>:circuit, lua/gate.lua, shard 0); an
        account whose circuit was never written is closed."""
        names = sorted(names)
        if not names:
            return {}
        async with (await self._data(0)).pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self.key("acct", name, "circuit"))
            hashes = await pipe.execute()
        return {name: Circuit.from_hash(raw) for name, raw in zip(names, hashes, strict=True)}


def _accepted(codes: Sequence[str]) -> AcceptResult:
    """accept.lua's letters for a request's events, counted."""
    future = tuple(i for i, code in enumerate(codes) if code.isupper())
    codes = [code.lower() for code in codes]
    parked = codes.count("p")
    return AcceptResult(codes.count("a") + parked, codes.count("d"), parked, future)


def _logged(row: list[Any], codes: Sequence[str]) -> list[Any]:
    """A request's event-log row (LOG_ROW, its events, verdict, blob, fields...) written
    apart from its events (they went to several shards): its verdict as eventlog.lua would
    derive it from their letters."""
    got = "".join(codes).lower()
    verdict = row[2] or (
        "accepted" if ("a" in got or "p" in got) else "duplicate" if "d" in got else "ignored"
    )
    return [row[0], 0, verdict, *row[3:]]


def _ms(clock: Sequence[Any]) -> int:
    """A TIME reply, (seconds, microseconds), as epoch ms: the scripts' NOW."""
    return int(clock[0]) * 1000 + int(clock[1]) // 1000


def _stream_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _works(items: list[Any], clock_offset_ms: int) -> list[Work]:
    work = []
    for ck, tok, flat, arrays, attempts, done in items:
        entries = [decode(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
        applied = [decode(done[i], done[i + 1]) for i in range(0, len(done), 2)]
        known = orjson.loads(arrays) if arrays else None
        work.append(Work(ck, tok, entries, known, int(attempts), applied, clock_offset_ms))
    return work
