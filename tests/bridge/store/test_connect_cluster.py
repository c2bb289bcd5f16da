"""REDIS_URL=redis+cluster://…: the clients connect.py makes reach a real six-node Redis
Cluster (tests/cluster.py), spread keys over every primary and follow a failover."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis
import redis.asyncio.cluster as aiocluster
import redis.cluster

from bridge.store.connect import async_client, sync_client

KEYS = [f"cb:test:{n}" for n in range(48)]


def _holders(cluster: Any) -> dict[int, set[str]]:
    """Which primary holds each key, asked of the nodes themselves: on a plain connection a
    primary answers GET only for its own slots (MOVED for the others)."""
    found: dict[int, set[str]] = {}
    for p in cluster.primaries():
        conn = cluster.client(p)
        found[p] = set()
        try:
            for k in KEYS:
                try:
                    if conn.get(k) is not None:
                        found[p].add(k)
                except redis.exceptions.MovedError:
                    pass
        finally:
            conn.close()
    return found


def _held_where_the_slots_say(cluster: Any) -> None:
    holders = _holders(cluster)
    assert len(holders) == 3
    assert all(holders.values()), holders  # every primary holds some
    assert set().union(*holders.values()) == set(KEYS)
    for p, keys in holders.items():
        assert all(cluster.node_for_key(k) == p for k in keys)  # CLUSTER KEYSLOT agrees
        conn = cluster.client(p)
        try:
            assert conn.dbsize() == len(keys)
        finally:
            conn.close()


def test_a_sync_client_from_a_cluster_url_writes_and_reads_on_all_three_primaries(
    redis_cluster,
):
    client: Any = sync_client(redis_cluster.url, decode_responses=True, socket_timeout=5)
    try:
        assert isinstance(client, redis.cluster.RedisCluster)
        for k in KEYS:
            client.set(k, f"v-{k}")
        assert [client.get(k) for k in KEYS] == [f"v-{k}" for k in KEYS]
    finally:
        client.close()
    _held_where_the_slots_say(redis_cluster)


def test_an_async_client_from_a_cluster_url_writes_and_reads_on_all_three_primaries(
    redis_cluster,
):
    async def run() -> list[str]:
        # the store's options: retry_on_timeout is not an asyncio RedisCluster keyword
        client: Any = async_client(
            redis_cluster.url,
            decode_responses=True,
            socket_timeout=5,
            retry_on_timeout=False,
            health_check_interval=10,
            max_connections=256,
        )
        try:
            assert isinstance(client, aiocluster.RedisCluster)
            for k in KEYS:
                await client.set(k, f"a-{k}")
            return [await client.get(k) for k in KEYS]
        finally:
            await client.aclose()

    assert asyncio.run(run()) == [f"a-{k}" for k in KEYS]
    _held_where_the_slots_say(redis_cluster)


def test_a_key_written_with_wait_1_is_read_back_after_kill_9_of_its_primary(redis_cluster):
    began = time.monotonic()
    client: Any = sync_client(redis_cluster.url, decode_responses=True, socket_timeout=5)
    try:
        key = "cb:test:survivor"
        client.set(key, "before")
        node = client.get_node_from_key(key)
        acked = client.execute_command("WAIT", 1, 5000, target_nodes=node)
        assert acked >= 1
        primary = redis_cluster.node_for_key(key)
        (replica,) = redis_cluster.replicas_of(primary)
        conn = redis_cluster.client(replica)
        try:
            conn.execute_command("READONLY")
            assert conn.get(key) == "before"  # the replica has it
        finally:
            conn.close()

        redis_cluster.kill(primary)
        promoted, took_s = redis_cluster.wait_promoted(primary, timeout_s=15)
        assert promoted == replica, (promoted, replica, took_s)

        deadline = time.monotonic() + 10  # the client finds the new primary on a retry
        while True:
            try:
                assert client.get(key) == "before"
                break
            except (redis.ConnectionError, redis.TimeoutError, redis.ClusterDownError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        client.set(key, "after")  # and writes there
        assert client.get(key) == "after"
        assert redis_cluster.node_for_key(key) == replica
    finally:
        client.close()
    assert time.monotonic() - began < 20
