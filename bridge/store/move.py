"""Moving the store onto another Redis, or onto another shard count: `convo-bridge migrate`.

The source is read as the layout it was written with (its shard count from its `layout`
record, keys.py), and every key that carries the queue's guarantees is written into the
shard it belongs to under the target's layout (REDIS_URL and `[redis] shards`):

- every conversation's keys: pending changes (`p:`), applied values and times (`hw:`, what
  newest-wins compares a late event with), the arrays cache (`arr:`), attempts so far
  (`att:`), the letter it was last replayed from (`rf:`), each with its time to live; and
  its place in `due`, at the same time;
- every link (`links:<source>`), into its link's shard;
- the dedup keys (`seen:`) of the events whose changes are among those, into their
  conversation's shard (where the accept of a re-send looks), with their time to live.

Left on the source: counters, charts and the event log (history, not work); the circuit
and rate-limit state (it starts closed); dedup keys whose event has no change left in any
conversation (a newer one replaced it): they are counted, and a re-send of such an event
within the dedup window is accepted again; with the sender's own time (every provider but
`standard` without `occurred_at`), newest wins makes it change nothing.

Refused, before anything is written: a source with dead letters (their ids name their shard
and RQ holds a failed job for each: replay or purge them there first), a source with a
conversation held by a running worker, and a target that already holds conversations or
links. The source is not changed (bar a sweep of leases that ran out, as any worker does);
it stays usable until REDIS_URL points at the target. A run stopped half way leaves a marker
on the target, and a second run writes everything again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bridge.config import RedisSettings
from bridge.errors import BridgeError
from bridge.store.client import Store

BATCH = 500  # keys per pipeline, read or written
MARKER = "moving"  # on the target's shard 0 while a move is under way
CONVERSATION_KINDS = {"p": "hash", "hw": "hash", "arr": "string", "att": "list", "rf": "string"}
# a key of these kinds on the target means it is in use
IN_USE = {"p", "hw", "arr", "att", "links", "due", "inflight", "dlq"}


class MoveRefused(BridgeError):
    """The move cannot start, or the source changed under it: nothing more was written."""


@dataclass
class MoveReport:
    conversations: int = 0  # conversations whose keys moved
    due: int = 0  # of them, with pending changes (in `due`)
    links: int = 0
    seen: int = 0  # dedup keys moved
    seen_left: int = 0  # dedup keys whose conversation is not known
    swept: int = 0  # leases that had run out, made due again first
    left: Counter[str] = field(default_factory=Counter)  # other keys left, by kind

    def lines(self) -> list[str]:
        out = [
            f"moved {self.conversations} conversations ({self.due} with changes waiting, "
            f"due at the same times), {self.links} links, {self.seen} dedup keys",
        ]
        if self.swept:
            out.append(f"first made {self.swept} conversations due again whose lease had run out")
        if self.seen_left:
            out.append(
                f"left {self.seen_left} dedup keys of events whose changes a newer event "
                "replaced: a re-send of one of those within the dedup window is accepted again "
                "(with the sender's own time, newest wins makes it change nothing)"
            )
        if self.left:
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.left.items()))
            out.append(
                f"left on the source (history and passing state, not work), keys by kind: {kinds} "
                "(r and m: counters and charts; events: the event log)"
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

    async def servers(self) -> list[tuple[Any, list[int]]]:
        by_server: dict[int, tuple[Any, list[int]]] = {}
        for shard in range(len(self.prefixes)):
            client = await self.store.shard_client(shard)
            by_server.setdefault(id(client), (client, []))[1].append(shard)
        return list(by_server.values())

    def key(self, shard: int, rest: str) -> str:
        return self.prefixes[shard] + rest

    def pattern(self) -> str:
        if len(self.prefixes) == 1:
            return self.prefixes[0] + "*"
        return "{cb.*"

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
        """`read` (ZCARD, or GET of a counter) of each named key, added up over the shards."""
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


async def source_shards(url: str) -> int:
    """The shard count the store at `url` was written with (its layout record; none: 1)."""
    probe = Store(url, durability=RedisSettings(shards=1))
    try:
        return await probe.held_layout() or 1
    finally:
        await probe.close()


async def move(source: Store, target: Store, *, quiet_ms: int) -> MoveReport:
    """Everything the queue's guarantees need, from `source` into `target`'s layout."""
    src, dst = _Layout(source), _Layout(target)
    report = MoveReport(swept=await source.sweep(quiet_ms))
    inflight, dead = await src.sums("inflight", "dlq")
    if dead:
        raise MoveRefused(
            f"the source holds {dead} dead letters (events waiting for a link among them): "
            "replay them (`dlq replay --all`) or purge them (`dlq purge --all`) there first; "
            "a dead letter's id names its shard and RQ keeps a failed job for it, so they do "
            "not move"
        )
    if inflight:
        raise MoveRefused(
            f"{inflight} conversations are held by a worker on the source: stop every worker "
            "(and serve), then run this again"
        )
    marker = dst.key(0, MARKER)
    if not await (await target.shard_client(0)).exists(marker):
        for _, _, key, rest in await dst.keys():
            if _kind(rest)[0] in IN_USE:
                raise MoveRefused(
                    f"the target already holds the store's keys ({key}): point REDIS_URL at "
                    "an empty Redis, or delete those keys there"
                )
    before = await _activity(src)
    await target.write_in(0, ("SET", marker, f"from {source.shards.count} shards"))

    by_server: dict[int, tuple[Any, list[tuple[str, str, str]]]] = {}
    seen_keys: dict[str, tuple[Any, str]] = {}  # seen:<src>:<id> -> (client, source key)
    for client, _, key, rest in await src.keys():
        kind, tail = _kind(rest)
        if kind == "seen":
            seen_keys[rest] = (client, key)
        elif kind in CONVERSATION_KINDS or kind in ("links", "due"):
            by_server.setdefault(id(client), (client, []))[1].append((key, kind, tail))
        else:
            report.left[kind] += 1

    writes: dict[int, list[tuple[Any, ...]]] = {}
    cks: set[str] = set()
    seen_to: dict[str, int] = {}  # seen:<src>:<id> -> the target shard of its conversation
    for client, items in by_server.values():
        for at in range(0, len(items), BATCH):
            chunk = items[at : at + BATCH]
            got = await _read(client, [(key, _type(kind)) for key, kind, _ in chunk])
            for (_, kind, tail), (value, ttl) in zip(chunk, got, strict=True):
                if kind == "due":
                    for ck, score in value:
                        shard = target.shards.of_conversation(ck)
                        writes.setdefault(shard, []).append(
                            ("ZADD", dst.key(shard, "due"), repr(score), ck)
                        )
                        report.due += 1
                elif kind == "links":
                    for ext, ck in value.items():
                        shard = target.shards.of_link(tail, ext)
                        writes.setdefault(shard, []).append(
                            ("HSET", dst.key(shard, f"links:{tail}"), ext, ck)
                        )
                        report.links += 1
                elif value:  # a conversation's key (gone since the scan: nothing to copy)
                    shard = target.shards.of_conversation(tail)
                    cks.add(tail)
                    key = dst.key(shard, f"{kind}:{tail}")
                    writes.setdefault(shard, []).extend(
                        _copy(key, CONVERSATION_KINDS[kind], value, ttl)
                    )
                    if kind in ("p", "hw"):
                        for name in _events_of(value.values()):
                            seen_to[name] = shard
    report.conversations = len(cks)

    # dedup keys: into the shard of the conversation their event's changes are in
    moves: dict[int, tuple[Any, list[tuple[str, str, int]]]] = {}
    for name, shard in seen_to.items():
        if name in seen_keys:  # else its dedup window is over
            client, key = seen_keys.pop(name)
            moves.setdefault(id(client), (client, []))[1].append((key, name, shard))
    report.seen_left = len(seen_keys)
    for client, found in moves.values():
        for at in range(0, len(found), BATCH):
            some = found[at : at + BATCH]
            got = await _read(client, [(key, "string") for key, _, _ in some])
            for (_, name, shard), (value, ttl) in zip(some, got, strict=True):
                if value is not None:
                    writes.setdefault(shard, []).extend(
                        _copy(dst.key(shard, name), "string", value, ttl)
                    )
                    report.seen += 1

    for shard, commands in writes.items():
        for at in range(0, len(commands), BATCH):
            await target.write_in(shard, *commands[at : at + BATCH])
    if await _activity(src) != before:
        raise MoveRefused(
            "the source changed while moving (serve or a worker is still running on it): stop "
            "them, then run this again; the target keeps what was written and the next run "
            "writes it all again"
        )
    await target.write_in(0, ("DEL", marker))
    return report


def _type(kind: str) -> str:
    if kind == "due":
        return "zset"
    if kind == "links":
        return "hash"
    return CONVERSATION_KINDS[kind]


async def _read(client: Any, keys: list[tuple[str, str]]) -> list[tuple[Any, int]]:
    """Each (key, type)'s value and time to live (ms; -1: none), in one pipeline."""
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


async def _activity(src: _Layout) -> tuple[int, ...]:
    """What serve or a worker would change on the source: its queue's sizes and the
    accept counters of the last two 10 s buckets."""
    bucket = int(time.time() // 10)  # Redis's clock may differ: both neighbours are read
    counters = [f"r:acc:{b}" for b in range(bucket - 2, bucket + 2)] + [
        f"r:dup:{b}" for b in range(bucket - 2, bucket + 2)
    ]
    sizes = await src.sums("due", "inflight", "dlq")
    return (*sizes, *await src.sums(*counters, read="GET"))
