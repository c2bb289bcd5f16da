"""What `config check` says about the Redis it will run on: whether the server is set up
for the `[redis] durability` chosen. Warnings, never errors: Redis may be down during the
check, and an operator may knowingly run without an append-only file."""

from __future__ import annotations

from redis.exceptions import RedisError, ResponseError

from bridge.config import Settings
from bridge.store.connect import redact, sync_store_client
from bridge.store.shards import shards_for


def durability_warnings(settings: Settings) -> list[str]:
    """One line per mismatch between the Redis server and `[redis] durability`."""
    where = redact(settings.redis_url)
    out: list[str] = []
    try:  # on Redis Cluster, the primary that holds the store's slot
        conn = sync_store_client(
            settings.redis_url,
            shards_for(settings.redis_url, settings.redis).prefixes[0] + "due",
            socket_connect_timeout=2,
            socket_timeout=2,
            decode_responses=True,
        )
    except (RedisError, OSError) as exc:
        return [f"Redis at {where} could not be checked ({type(exc).__name__})"]
    try:
        appendonly = conn.config_get("appendonly").get("appendonly")
        replicas = int(conn.info("replication").get("connected_slaves", 0))
        if settings.redis.durability == "replica":
            try:
                conn.waitaof(0, 0, 0)
            except ResponseError:
                out.append(
                    f'Redis at {where} has no WAITAOF: [redis] durability = "replica" needs '
                    "Redis >= 7.2 or Valkey; every write is answered 503 until then"
                )
    except (RedisError, OSError) as exc:
        return [f"Redis at {where} could not be checked ({type(exc).__name__})"]
    finally:
        conn.close()
    if settings.redis.durability == "local" and appendonly != "yes":
        out.append(
            f"Redis at {where} has appendonly {appendonly}: a restart loses what was "
            "acknowledged since its last snapshot (set appendonly yes)"
        )
    want = settings.redis.replicas
    if settings.redis.durability == "replica" and replicas < want:
        out.append(
            f"Redis at {where} has {replicas} replica(s) connected; [redis] durability = "
            f'"replica" needs {want}: every write is answered 503 until they connect'
        )
    return out
