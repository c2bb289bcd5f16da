"""`[redis] durability = "replica"`: a write counts only once `replicas` replicas hold it.

WAIT and WAITAOF go in the same pipeline as the write, so they run on the connection that
made it (they wait for that connection's last write). Both are needed: WAITAOF waits for
the replicas' fsync, and WAIT first means a lone writer is not held for the whole WAITAOF
timeout when the replicas' offsets already moved on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.config import RedisSettings
from bridge.errors import NotReplicated


def add_waits(pipe: Any, durability: RedisSettings) -> int:
    """Queue WAIT and WAITAOF on `pipe` when durability asks for replicas; how many."""
    if durability.durability != "replica":
        return 0
    pipe.wait(durability.replicas, durability.replica_timeout_ms)
    pipe.waitaof(0, durability.replicas, durability.replica_timeout_ms)
    return 2


def check_waits(replies: Sequence[Any], durability: RedisSettings, where: str) -> None:
    """Raise NotReplicated unless the WAIT and WAITAOF `replies` reach `replicas`."""
    if not replies:
        return
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    in_memory, on_disk = replies
    held = min(int(in_memory), int(on_disk[1]))
    if held < durability.replicas:
        raise NotReplicated(
            f"Redis at {where}: {held} of {durability.replicas} replica(s) acknowledged the "
            f"write within {durability.replica_timeout_ms} ms"
        )
