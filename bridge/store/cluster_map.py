"""On Redis Cluster, plain clients on the primaries that own the store's shards' slots.

Every key of a shard carries the shard's hash tag (bridge/store/shards.py), so each script
and pipeline of the store stays inside one slot, and so on one primary at a time. Talking to
that primary over a plain connection keeps what a cluster client cannot give: WAIT and
WAITAOF on the very connection that wrote (replica durability), TIME from the server whose
clock the shard's scripts read, and one pipeline per round trip.

`ClusterNodes` learns which primary owns which slots by asking the nodes it knows (the
startup nodes, then every node a CLUSTER SLOTS answer named), keeps one pair of clients per
primary, and asks again once told the map is stale (`forget`: the store calls it after a
failed connection, MOVED, READONLY or CLUSTERDOWN). Until the cluster has promoted a replica
for a lost primary, calls to its shards fail and the store answers 503, as for a lost server.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

# How often, at most, the nodes are asked again while the map is stale (a dead primary not
# yet replaced answers nothing for a few seconds; every call would ask otherwise)
ASK_EVERY_S = 0.1
ASK_TIMEOUT_S = 1.0
MOVED = ("MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN", "READONLY")

Node = tuple[str, int]


def _node(entry: Any) -> Node:
    host = entry[0].decode() if isinstance(entry[0], bytes) else str(entry[0])
    return host, int(entry[1])


def owner_in(slots: Any, slot: int) -> Node | None:
    """The primary CLUSTER SLOTS names for `slot`."""
    for entry in slots:
        if int(entry[0]) <= slot <= int(entry[1]):
            return _node(entry[2])
    return None


class ClusterNodes:
    """The cluster's slot map and a data and a script client per primary."""

    def __init__(self, nodes: tuple[Node, ...], auth: dict[str, Any], **options: Any) -> None:
        self.known: list[Node] = list(nodes)
        self.auth = auth
        self.options = options
        self._slots: Any = None
        self._asked_at = 0.0
        self._lock = asyncio.Lock()
        self._clients: dict[tuple[Node, bool], aioredis.Redis] = {}

    def forget(self) -> None:
        """The map may be stale (a connection failed, a node said MOVED): ask again."""
        self._slots = None

    async def client(self, slot: int, *, scripts: bool = False) -> aioredis.Redis:
        """The client on the primary owning `slot` (`scripts`: the one without a socket
        timeout, for script calls bounded by the caller)."""
        owner = owner_in(await self._map(), slot)
        if owner is None:
            self.forget()
            raise RedisConnectionError(f"no primary of the cluster owns slot {slot}")
        found = self._clients.get((owner, scripts))
        if found is None:
            options = dict(self.options)
            if scripts:
                options["socket_timeout"] = None
            found = self._clients[(owner, scripts)] = aioredis.Redis(
                host=owner[0], port=owner[1], **self.auth, **options
            )
        return found

    async def _map(self) -> Any:
        if self._slots is not None:
            return self._slots
        async with self._lock:
            if self._slots is None:
                wait = self._asked_at + ASK_EVERY_S - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._asked_at = time.monotonic()
                self._slots = await self._ask()
            return self._slots

    async def _ask(self) -> Any:
        for host, port in list(self.known):
            conn = aioredis.Redis(host=host, port=port, **ask_options(self.auth))
            try:
                slots = await conn.execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
            except (RedisError, OSError):
                continue
            finally:
                await conn.aclose()
            for entry in slots:
                for node in entry[2:]:
                    if _node(node) not in self.known:
                        self.known.append(_node(node))
            return slots
        raise RedisConnectionError("no node of the cluster answered CLUSTER SLOTS")

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def ask_options(auth: dict[str, Any]) -> dict[str, Any]:
    return {"socket_timeout": ASK_TIMEOUT_S, "socket_connect_timeout": ASK_TIMEOUT_S, **auth}


def primary_sync(nodes: tuple[Node, ...], slot: int, auth: dict[str, Any]) -> Node:
    """The primary owning `slot` now, from blocking code (`config check`, RQ jobs)."""
    for host, port in nodes:
        conn = redis.Redis(host=host, port=port, **ask_options(auth))
        try:
            slots = conn.execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
        except (RedisError, OSError):
            continue
        finally:
            conn.close()
        if (owner := owner_in(slots, slot)) is not None:
            return owner
    raise RedisConnectionError(f"no node of the cluster named the owner of slot {slot}")
