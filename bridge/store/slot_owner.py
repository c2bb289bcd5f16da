"""On Redis Cluster, a plain client that always talks to the primary owning one hash slot.

The store's keys all carry one hash tag (keys.CLUSTER_PREFIX), so every key, script and
pipeline of the store belongs to one slot, and so to one primary at a time. Talking to that
primary over plain connections keeps what a cluster client cannot give: WAIT and WAITAOF on
the very connection that wrote (replica durability), TIME from the server whose clock the
scripts read, and one pipeline per round trip.

`SlotOwner` finds the primary by asking the nodes it knows (the startup nodes, then every
node a CLUSTER SLOTS answer named) and remembers it until told it moved: a connection that
fails to connect, or hears MOVED, READONLY or CLUSTERDOWN, forgets it, and every pooled
connection made before reconnects to the primary found next (after a failover, the promoted
replica). Until the cluster has promoted one, calls fail and the store answers 503, as it
does for a lost single server.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, ConnectionPool
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError, ResponseError

# How often, at most, the nodes are asked again while the owner is unknown (a dead primary
# not yet replaced answers nothing for a few seconds; every call would ask otherwise)
ASK_EVERY_S = 0.1
ASK_TIMEOUT_S = 1.0
_MOVED = ("MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN")


def _owner_in(slots: Any, slot: int) -> tuple[str, int] | None:
    """The primary (host, port) CLUSTER SLOTS names for `slot`."""
    for entry in slots:
        low, high, primary = int(entry[0]), int(entry[1]), entry[2]
        if low <= slot <= high:
            host = primary[0].decode() if isinstance(primary[0], bytes) else str(primary[0])
            return host, int(primary[1])
    return None


def _nodes_in(slots: Any) -> list[tuple[str, int]]:
    found = []
    for entry in slots:
        for node in entry[2:]:
            host = node[0].decode() if isinstance(node[0], bytes) else str(node[0])
            found.append((host, int(node[1])))
    return found


class SlotOwner:
    """Where the primary of `key`'s slot is, as the cluster's nodes say."""

    def __init__(self, nodes: tuple[tuple[str, int], ...], key: str, auth: dict[str, Any]) -> None:
        self.slot = key_slot(key.encode())
        self.known: list[tuple[str, int]] = list(nodes)
        self.auth = auth
        self.generation = 0  # counts moves: a connection made in an older one reconnects
        self._owner: tuple[str, int] | None = None
        self._asked_at = 0.0
        self._lock = asyncio.Lock()

    def forget(self) -> None:
        """The owner may have moved (a connection failed or heard MOVED): ask again."""
        if self._owner is not None:
            self._owner = None
            self.generation += 1

    async def primary(self) -> tuple[str, int]:
        async with self._lock:
            if self._owner is None:
                wait = self._asked_at + ASK_EVERY_S - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._asked_at = time.monotonic()
                self._owner = await self._ask()
            return self._owner

    async def _ask(self) -> tuple[str, int]:
        for host, port in list(self.known):
            conn = aioredis.Redis(host=host, port=port, **self._ask_options())
            try:
                slots = await conn.execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
            except (RedisError, OSError):
                continue
            finally:
                await conn.aclose()
            self._learn(slots)
            if (owner := _owner_in(slots, self.slot)) is not None:
                return owner
        raise self._unknown()

    def primary_sync(self) -> tuple[str, int]:
        """The same question, from blocking code (`config check`, RQ jobs)."""
        for host, port in list(self.known):
            conn = redis.Redis(host=host, port=port, **self._ask_options())
            try:
                slots = conn.execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
            except (RedisError, OSError):
                continue
            finally:
                conn.close()
            if (owner := _owner_in(slots, self.slot)) is not None:
                return owner
        raise self._unknown()

    def _ask_options(self) -> dict[str, Any]:
        return {
            "socket_timeout": ASK_TIMEOUT_S,
            "socket_connect_timeout": ASK_TIMEOUT_S,
            **self.auth,
        }

    def _unknown(self) -> RedisConnectionError:
        return RedisConnectionError(f"no node of the cluster named the owner of slot {self.slot}")

    def _learn(self, slots: Any) -> None:
        for node in _nodes_in(slots):
            if node not in self.known:
                self.known.append(node)


class SlotOwnerConnection(Connection):
    """A connection to whichever primary owns its pool's slot now."""

    def __init__(self, *, slot_owner: SlotOwner, **kwargs: Any) -> None:
        self.slot_owner = slot_owner
        self._generation = -1
        super().__init__(**kwargs)

    async def connect(self) -> None:
        owner = self.slot_owner
        if self.is_connected and self._generation != owner.generation:
            await self.disconnect()  # made before the owner moved
        if self.is_connected:
            return
        generation = owner.generation
        self.host, self.port = await owner.primary()
        try:
            await super().connect()  # type: ignore[no-untyped-call]
        except (RedisConnectionError, OSError):
            owner.forget()
            raise
        self._generation = generation

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except ReadOnlyError:
            self._moved()
            raise
        except ResponseError as exc:
            if str(exc).startswith(_MOVED):
                self._moved()
            raise
        except (RedisConnectionError, OSError):
            self.slot_owner.forget()
            raise

    def _moved(self) -> None:
        if self._generation == self.slot_owner.generation:
            self.slot_owner.forget()


def slot_owner_client(
    nodes: tuple[tuple[str, int], ...], key: str, auth: dict[str, Any], **options: Any
) -> aioredis.Redis:
    """An asyncio client whose every connection goes to the primary owning `key`'s slot."""
    owner = SlotOwner(nodes, key, auth)
    max_connections = options.pop("max_connections", None)
    decode = options.pop("decode_responses", False)
    pool = ConnectionPool(
        connection_class=SlotOwnerConnection,
        slot_owner=owner,
        max_connections=max_connections,
        decode_responses=decode,
        **auth,
        **options,
    )
    return aioredis.Redis(connection_pool=pool)
