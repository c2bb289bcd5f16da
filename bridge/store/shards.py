"""The store's shards: which prefix (and so which hash slot) each key lives under.

Every shard is a whole copy of the layout in keys.py under its own prefix: its own `due`,
`inflight`, pending and applied hashes, dead letters, links, counters and event log. A
conversation lives in the shard its key hashes to; a link (and an event parked waiting for
it) in the shard of `source` and external id; a dead letter in the shard that made it (its
id says which). What is shared by every conversation (the circuit breaker and the rate limit,
`circuit` / `recent` / `rl`, and the accounts' own) lives in shard 0. Readers (status, the
dead-letter list, the event log, the charts) add the shards up.

    one shard (`[redis] shards = 1`, the default off Cluster)   prefix `cb:`: the layout
                                                                 every earlier version wrote
    one shard on Redis Cluster                                   `{cb}:`: one slot
    N shards                                                     `{cb.<i>.<salt>}:`: shard i's
                                                                 slot is in the i-th Nth of the
                                                                 16384 slots, so any even split
                                                                 of the slots over primaries
                                                                 splits the shards evenly too

A shard's tag names its number, so a script knows its shard from its prefix alone (dead
letter ids end in `-s<i>`), and the wake a script sends names it too.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from bridge.config import RedisSettings
from bridge.store.keys import base_prefix, on_cluster

WAKE_CHANNEL = "cb.wake"  # PUBLISH channel of the sharded layout's wakes (payload: shard)
DEFAULT_CLUSTER_SHARDS = 120  # 3 to 16 equal primaries each hold 120/n ± 1 shards (±15 %)


def _tag(i: int, count: int) -> str:
    """The first `cb.<i>.<salt>` whose slot falls in the i-th of `count` equal slot ranges."""
    low = i * REDIS_CLUSTER_HASH_SLOTS // count
    high = (i + 1) * REDIS_CLUSTER_HASH_SLOTS // count
    salt = 0
    while True:
        tag = f"cb.{i}.{salt}"
        if low <= key_slot(tag.encode()) < high:
            return tag
        salt += 1


@functools.cache
def _prefixes(count: int, cluster: bool) -> tuple[str, ...]:
    if count == 1:
        return (base_prefix(cluster),)
    return tuple("{" + _tag(i, count) + "}:" for i in range(count))


@dataclass(frozen=True, slots=True)
class Shards:
    """`count` shards; `cluster`: the store is on Redis Cluster."""

    count: int = 1
    cluster: bool = False

    @property
    def prefixes(self) -> tuple[str, ...]:
        return _prefixes(self.count, self.cluster)

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def _of(self, text: str) -> int:
        return zlib.crc32(text.encode()) % self.count if self.count > 1 else 0

    def of_conversation(self, ck: str) -> int:
        return self._of(ck)

    def of_link(self, source: str, external_id: str) -> int:
        return self._of(f"{source}\n{external_id}")

    def dead_letter_prefix(self, dl_id: str) -> str:
        return self.prefixes[self.of_dead_letter(dl_id)]

    def of_dead_letter(self, dl_id: str) -> int:
        """A dead letter's shard, from the `-s<i>` its id ends with (none: shard 0)."""
        _, sep, shard = dl_id.rpartition("-s")
        if sep and shard.isdigit() and int(shard) < self.count:
            return int(shard)
        return 0


def shards_for(url: str, settings: RedisSettings) -> Shards:
    """The shards a store on Redis `url` with `[redis]` settings uses."""
    cluster = on_cluster(url)
    return Shards(settings.shards or (DEFAULT_CLUSTER_SHARDS if cluster else 1), cluster)
