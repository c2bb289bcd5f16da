"""Moving the store onto another Redis, or onto another shard count: `convo-bridge migrate`.

The source is read as the layout it was written with (its shard count from its `layout`
record, keys.py), and every key that carries the queue's guarantees is written into the
shard it belongs to under the target's layout (REDIS_URL and `[redis] shards`):

- every conversation's keys: pending changes (`p:`), applied values and times (`hw:`, what
  newest-wins compares a late event with), the arrays cache (`arr:`), attempts so far
  (`att:`), the letter it was last replayed from (`rf:`), each with its time to live; and
  its place in `due`, at the same time (on the source's clock);
- every link (`links:<source>`), into its link's shard;
- the dedup keys (`seen:`): onto one shard, all of them; onto several, each into the shard
  of the conversation its event's changes are in, and the rest (events a newer one
  replaced) into every shard, unless that makes more than SEEN_COPIES_MAX keys: then they
  are left, and counted;
- the dead-letter mirror's lists (`rqnew`, `rqgone`), into shard 0.

Left on the source: counters, charts and the event log (history, not work), and the
circuit and rate-limit state (it starts closed).

Refused, before anything is written: a source with dead letters (their ids name their shard
and RQ holds a failed job for each: replay or purge them there first), a source with a
conversation held by a running worker, a source with none of the store's keys (the wrong
Redis or database), `--from` naming the target itself, and a target that already holds the
store's keys. The source is not changed (bar a sweep of leases that ran out, as any worker
does); it stays usable until REDIS_URL points at the target. The move fails if the source
changed meanwhile (its queue's sizes, its links, or its recent-rate counters: something
still runs on it). A run stopped half way leaves a marker on the target naming its source:
a run from that source clears what the first one wrote and writes it all again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from bridge.errors import BridgeError
from bridge.store.client import Store
from bridge.store.connect import redact, store_errors

BATCH = 500  # keys per pipeline, read or written
SEEN_COPIES_MAX = 1_000_000  # dedup keys written to every shard, at most
CONVERSATION_KINDS = {"p": "hash", "hw": "hash", "arr": "string", "att": "list", "rf": "string"}
MIRROR_LISTS = ("rqnew", "rqgone")
# the Redis type of each kind of key read whole (dedup keys are read apart)
TYPES = {**CONVERSATION_KINDS, "due": "zset", "links": "hash", "rqnew": "list", "rqgone": "list"}
MOVED_KINDS = {*TYPES, "seen"}
# a key of these kinds on the target means it is in use; of the second, that it was used
# since a stopped move (a move writes none of them)
IN_USE = {"p", "hw", "arr", "att", "links", "due", "inflight", "dlq", "seen"}
USED_SINCE = {"inflight", "lease", "dlq", "dl", "dle", "dla", "dlseq", "ux"}
COUNTERS = ("acc", "dup", "ok", "fail", "dead")  # r:<what>:<10 s bucket>, prelude.lua
# what the bridge writes with (its scripts, and plain writes of links and admin commands)
WRITES = ("evalsha", "eval", "evalsha_ro", "fcall", "set", "del", "unlink", "hset", "hdel",
          "zadd", "zrem", "lpush", "rpush", "incrby", "expire", "pexpire")  # fmt: skip


class MoveRefused(BridgeError):
    """The move cannot start, or the source changed under it."""


@dataclass
class MoveReport:
    conversations: int = 0  # conversations whose keys moved
    due: int = 0  # of them, with pending changes (in `due`)
    links: int = 0
    seen: int = 0  # dedup keys moved into their one shard
    seen_everywhere: int = 0  # dedup keys of unknown conversation, into every shard
    seen_left: int = 0  # dedup keys of unknown conversation, left
    mirror: int = 0  # ids in the dead-letter mirror's lists
    swept: int = 0  # leases that had run out, made due again first
    cleared: int = 0  # keys a stopped run had written, deleted first
    left: Counter[str] = field(default_factory=Counter)  # other keys left, by kind

    def lines(self) -> list[str]:
        out = []
        if self.cleared:
            out.append(f"cleared {self.cleared} keys a stopped move had written to the target")
        if self.swept:
            out.append(f"first made {self.swept} conversations due again whose lease had run out")
        out.append(
            f"moved {self.conversations} conversations ({self.due} with changes waiting, due "
            f"at the same times), {self.links} links, {self.seen} dedup keys into their "
            f"conversation's shard, {self.mirror} ids of the dead-letter mirror"
        )
        if self.seen_everywhere:
            out.append(
                f"wrote {self.seen_everywhere} dedup keys of events a newer event replaced into "
                "every shard (their conversation is not known)"
            )
        if self.seen_left:
            out.append(
                f"left {self.seen_left} dedup keys of events a newer event replaced (more than "
                f"{SEEN_COPIES_MAX:,} copies): a re-send of one within the dedup window is "
                "accepted again; with the sender's own time newest wins makes it change "
                "nothing, without one it counts as new"
            )
        if self.left:
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.left.items()))
            out.append(
                f"left on the source (history and passing state, not work), keys by kind: "
                f"{kinds} (r and m: counters and charts; events: the event log)"
            )
        return out


def _kind(rest: str) -> tuple[str, str]:
    """A key's kind and the part after it: ('p', ck), ('due', ''), ('seen', 'src:id')."""
    kind, sep, tail = rest.partition(":")
    return (kind, tail) if sep else (rest, "")


def _events_of(entries: Iterable[str]) -> Iterable[str]:
    """`seen:` names of the events behind a hash's change entries (bridge/changes.py: the
    entry's second and third lines are its source and event id)."""
    for entry in entries:
        parts = entry.split("\n", 4)
        if len(parts) == 5:
            yield f"seen:{parts[1]}:{parts[2]}"


class _Layout:
    """One store's shards, grouped by the server that holds them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.prefixes = store.shards.prefixes
        self.shard_of = {p: i for i, p in enumerate(self.prefixes)}
        self._servers: list[tuple[Any, list[int]]] = []

    async def servers(self) -> list[tuple[Any, list[int]]]:
        """(client, its shards) per server, looked up once: the move runs stopped."""
        if not self._servers:
            by_server: dict[int, tuple[Any, list[int]]] = {}
            for shard in range(len(self.prefixes)):
                client = await self.store.shard_client(shard)
                by_server.setdefault(id(client), (client, []))[1].append(shard)
            self._servers = list(by_server.values())
        return self._servers

    def pattern(self) -> str:
        return self.prefixes[0] + "*" if len(self.prefixes) == 1 else "{cb.*"

    def split(self, key: str) -> tuple[int, str] | None:
        """(shard, the key after its prefix), or None for a key of no shard here."""
        if len(self.prefixes) == 1:
            prefix = self.prefixes[0]
            return (0, key[len(prefix) :]) if key.startswith(prefix) else None
        end = key.find("}:")
        shard = self.shard_of.get(key[: end + 2]) if end > 0 else None
        return None if shard is None else (shard, key[end + 2 :])

    async def keys(self) -> list[tuple[Any, int, str, str]]:
        """Every key of the layout: (its server's client, shard, key, the key after the
        prefix), one SCAN per server."""
        out = []
        for client, _ in await self.servers():
            async for key in client.scan_iter(match=self.pattern(), count=1000):
                where = self.split(key)
                if where is not None:
                    out.append((client, where[0], key, where[1]))
        return out

    async def sums(self, *keys: str, read: str = "ZCARD") -> list[int]:
        """`read` (ZCARD, HLEN, or GET of a counter) of each named key, added up over the
        shards."""
        totals = [0] * len(keys)
        for client, shards in await self.servers():
            async with client.pipeline(transaction=False) as pipe:
                for shard in shards:
                    for name in keys:
                        pipe.execute_command(read, self.prefixes[shard] + name)
                counts = await pipe.execute()
            for i, n in enumerate(counts):
                totals[i % len(keys)] += int(n or 0)
        return totals


async def source_shards(url: str, rq_url: str) -> int:
    """The shard count the store at `url` was written with (its layout record; none: 1)."""
    from bridge.config import RedisSettings

    probe = Store(url, durability=RedisSettings(shards=1), rq_url=rq_url)
    try:
        return await probe.held_layout() or 1
    finally:
        await probe.close()


class _Activity:
    """What serve, a worker or an admin command changes on the source: its queue's sizes,
    its recent-rate counters (10 s buckets on the source's own clock, kept 130 s: those
    read at the start are read again at each check, and every later one must be empty) and
    the links as they were copied. Checked after reading and again after writing."""

    def __init__(self, src: _Layout) -> None:
        self.src = src
        self.first = 0
        self.writes: int | None = None
        self.before: tuple[list[int], dict[str, int]] = ([], {})
        self.links: list[tuple[Any, str, dict[str, str]]] = []  # (client, key, as copied)

    async def _bucket(self) -> int:
        """The source's current 10 s bucket, on its shard 0 server's clock."""
        return await self.src.store.clock_ms() // 10_000

    async def _read(self, last: int) -> tuple[list[int], dict[str, int]]:
        names = [f"r:{what}:{b}" for what in COUNTERS for b in range(self.first, last + 1)]
        sizes = await self.src.sums("due", "inflight", "dlq")
        return sizes, dict(zip(names, await self.src.sums(*names, read="GET"), strict=True))

    async def _writes(self) -> int | None:
        """Write commands the source's servers have run (INFO commandstats; None when INFO
        is not allowed): the move itself sends none after its start, and unlike the
        counters they do not expire."""
        total = 0
        for client, _ in await self.src.servers():
            try:
                stats = await client.info("commandstats")
            except ResponseError:
                return None
            total += sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in WRITES)
        return total

    async def start(self) -> None:
        self.first = await self._bucket() - 1  # other shards' servers may be a little off
        self.before = await self._read(self.first + 2)
        self.writes = await self._writes()

    async def check(self) -> None:
        sizes, counters = await self._read(await self._bucket() + 1)
        old_sizes, old = self.before
        # a bucket read before may have expired since (nothing was added to it then)
        changed = sizes != old_sizes or any(
            n != old.get(name, 0) and not (n == 0 and name in old) for name, n in counters.items()
        )
        for client, key, value in self.links:
            changed = changed or await client.hgetall(key) != value
        changed = changed or (self.writes is not None and await self._writes() != self.writes)
        if changed:
            raise MoveRefused(
                "the source changed while moving (serve, a worker or an admin command is still "
                "running on it): stop them, then run this again; the next run clears what "
                "this one wrote"
            )


async def move(source: Store, target: Store, *, quiet_ms: int) -> MoveReport:
    """Everything the queue's guarantees need, from `source` into `target`'s layout."""
    src, dst = _Layout(source), _Layout(target)
    report = MoveReport()
    with store_errors(source.url):
        server = await source.server_identity()
    with store_errors(target.url):
        if server[0] and server == await target.server_identity():
            raise MoveRefused("--from names REDIS_URL's own server and database")
    activity = _Activity(src)
    with store_errors(source.url):
        while swept := await source.sweep(quiet_ms):  # a sweep handles 500 at a time
            report.swept += swept
        await activity.start()  # before the scan: a write during it is seen at the check
        _, inflight, dead = activity.before[0]
        if dead:
            raise MoveRefused(
                f"the source holds {dead} dead letters (events waiting for a link among "
                "them): replay them (`dlq replay --all`) or purge them (`dlq purge --all`) "
                "there first; a dead letter's id names its shard and RQ keeps a failed job "
                "for it, so they do not move"
            )
        if inflight:
            raise MoveRefused(
                f"{inflight} conversations are held by a worker on the source: stop every "
                "worker (and serve), then run this again"
            )
        found = await src.keys()
        if not found:
            raise MoveRefused(
                f"the source {redact(source.url)} holds none of the store's keys "
                f"({src.pattern()}, {source.shards.count} shards): is --from the Redis and "
                "database the bridge ran on?"
            )
    identity = f"{redact(source.url)}, {source.shards.count} shards, server {server[0] or '?'}"
    with store_errors(target.url):
        await _claim(target, dst, identity, report)
    with store_errors(source.url):
        writes = await _collect(found, target, report, activity)
        await activity.check()
    with store_errors(target.url):
        await _write(target, writes)
    with store_errors(source.url):
        await activity.check()
    with store_errors(target.url):
        await target.mark_move(None)
    return report


async def _claim(target: Store, dst: _Layout, identity: str, report: MoveReport) -> None:
    """Refuses a target in use; marks it as being moved onto. A stopped run from the same
    source: what it wrote is cleared first (the conversations it copied may have been
    delivered on the source since), unless the target was used meanwhile."""
    held = await target.move_marker()
    if held is not None and held != identity:
        raise MoveRefused(
            f"the target holds a stopped move from {held}: run that one again, or delete the "
            "store's keys there"
        )
    stale: dict[int, list[tuple[Any, ...]]] = {}
    for _, shard, key, rest in await dst.keys():
        kind = _kind(rest)[0]
        if kind in (IN_USE if held is None else USED_SINCE):
            raise MoveRefused(
                f"the target already holds the store's keys ({key}): point REDIS_URL at an "
                "empty Redis, or delete those keys there"
            )
        if held is not None and kind in MOVED_KINDS:
            stale.setdefault(shard, []).append(("DEL", key))
            report.cleared += 1
    await target.mark_move(identity)
    await _write(target, stale)


async def _collect(
    found: list[tuple[Any, int, str, str]],
    target: Store,
    report: MoveReport,
    activity: _Activity,
) -> dict[int, list[tuple[Any, ...]]]:
    """The writes that make the target hold what `found` (the source's keys) holds, by
    target shard."""
    by_server: dict[int, tuple[Any, list[tuple[str, str, str]]]] = {}
    seen_keys: dict[str, tuple[Any, str]] = {}  # seen:<src>:<id> -> (client, source key)
    for client, _, key, rest in found:
        kind, tail = _kind(rest)
        if kind == "seen":
            seen_keys[rest] = (client, key)
        elif kind in TYPES:
            by_server.setdefault(id(client), (client, []))[1].append((key, kind, tail))
        else:
            report.left[kind] += 1

    shards = target.shards
    writes: dict[int, list[tuple[Any, ...]]] = {}
    cks: set[str] = set()
    seen_to: dict[str, int] = {}  # seen:<src>:<id> -> the target shard of its conversation
    for client, items in by_server.values():
        for at in range(0, len(items), BATCH):
            chunk = items[at : at + BATCH]
            got = await _read(client, [(key, TYPES[kind]) for key, kind, _ in chunk])
            for (key, kind, tail), (value, ttl) in zip(chunk, got, strict=True):
                if kind == "due":
                    for ck, score in value:
                        shard = shards.of_conversation(ck)
                        writes.setdefault(shard, []).append(
                            ("ZADD", target.key_in(shard, "due"), repr(score), ck)
                        )
                        report.due += 1
                elif kind == "links":
                    activity.links.append((client, key, value))
                    for ext, ck in value.items():
                        shard = shards.of_link(tail, ext)
                        writes.setdefault(shard, []).append(
                            ("HSET", target.key_in(shard, f"links:{tail}"), ext, ck)
                        )
                        report.links += 1
                elif kind in MIRROR_LISTS:
                    if value:
                        writes.setdefault(0, []).append(("RPUSH", target.key_in(0, kind), *value))
                        report.mirror += len(value)
                elif value and ttl not in (0, -2):  # a conversation's key, still there
                    shard = shards.of_conversation(tail)
                    cks.add(tail)
                    writes.setdefault(shard, []).extend(
                        _copy(
                            target.key_in(shard, f"{kind}:{tail}"),
                            CONVERSATION_KINDS[kind],
                            value,
                            ttl,
                        )
                    )
                    if kind in ("p", "hw"):
                        for name in _events_of(value.values()):
                            seen_to[name] = shard
    report.conversations = len(cks)

    # dedup keys: into the shard of the conversation their event's changes are in; the
    # others (a newer event replaced their changes) into every shard, within bounds
    unknown = [name for name in seen_keys if name not in seen_to]
    everywhere = shards.count == 1 or len(unknown) * shards.count <= SEEN_COPIES_MAX
    moves: dict[int, tuple[Any, list[tuple[str, str, list[int]]]]] = {}
    for name, (client, key) in seen_keys.items():
        to = [seen_to[name]] if name in seen_to else list(range(shards.count)) if everywhere else []
        if to:
            moves.setdefault(id(client), (client, []))[1].append((key, name, to))
    report.seen_left = 0 if everywhere else len(unknown)
    for client, wanted in moves.values():
        for at in range(0, len(wanted), BATCH):
            some = wanted[at : at + BATCH]
            got = await _read(client, [(key, "string") for key, _, _ in some])
            for (_, name, to), (value, ttl) in zip(some, got, strict=True):
                if value is None or ttl in (0, -2):
                    continue  # its dedup window ended meanwhile
                for shard in to:
                    writes.setdefault(shard, []).extend(
                        _copy(target.key_in(shard, name), "string", value, ttl)
                    )
                if len(to) == 1:
                    report.seen += 1
                else:
                    report.seen_everywhere += 1
    return writes


async def _write(target: Store, writes: dict[int, list[tuple[Any, ...]]]) -> None:
    for shard, commands in writes.items():
        for at in range(0, len(commands), BATCH):
            await target.write_in(shard, *commands[at : at + BATCH])


async def _read(client: Any, keys: list[tuple[str, str]]) -> list[tuple[Any, int]]:
    """Each (key, type)'s value and time to live (ms; -1: none, -2: gone), in one pipeline."""
    async with client.pipeline(transaction=False) as pipe:
        for key, kind in keys:
            if kind == "hash":
                pipe.hgetall(key)
            elif kind == "list":
                pipe.lrange(key, 0, -1)
            elif kind == "zset":
                pipe.zrange(key, 0, -1, withscores=True)
            else:
                pipe.get(key)
            pipe.pttl(key)
        replies = await pipe.execute()
    return [(replies[i], int(replies[i + 1])) for i in range(0, len(replies), 2)]


def _copy(key: str, kind: str, value: Any, ttl: int) -> list[tuple[Any, ...]]:
    """Commands that make `key` hold `value` (a hash, list or string), expiring like it."""
    if kind == "string":
        return [("SET", key, value, "PX", ttl) if ttl > 0 else ("SET", key, value)]
    out: list[tuple[Any, ...]] = [("DEL", key)]
    if kind == "hash":
        out.append(("HSET", key, *(x for pair in value.items() for x in pair)))
    else:
        out.append(("RPUSH", key, *value))
    if ttl > 0:
        out.append(("PEXPIRE", key, ttl))
    return out
