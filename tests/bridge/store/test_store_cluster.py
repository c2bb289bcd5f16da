"""The store on a real Redis Cluster (tests/cluster.py: three valkey primaries, one replica
each), with RQ on a Redis of its own: the same guarantees as on one server, every key in the
store's one slot, and a primary killed with kill -9 losing nothing acknowledged."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time

import pytest
import redis

from bridge.config import RedisSettings
from bridge.errors import StoreUnavailable
from bridge.store import Store, conversation_key
from bridge.store.keys import CLUSTER_PREFIX
from bridge.store.scripts import source
from tests.bridge.store import test_store as single

# Every test of test_store.py that needs only a store: run again, on the cluster
CASES = [
    fn
    for name, fn in vars(single).items()
    if name.startswith("test_") and set(inspect.signature(fn).parameters) <= {"store", "kind"}
]
KINDS = {"test_a_repeated_failed_settle_changes_nothing_more": ["dead", "retry"]}


def _case_ids() -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for fn in CASES:
        for kind in KINDS.get(fn.__name__, [None]):
            out.append((fn.__name__, kind))
    return out


@pytest.fixture
def cluster_store(redis_cluster, rq_redis_url):
    return single.Runner(redis_cluster.url, rq_url=rq_redis_url)


@pytest.mark.parametrize(("case", "kind"), _case_ids(), ids=lambda x: str(x))
def test_the_single_server_guarantees_hold_on_redis_cluster(case, kind, cluster_store):
    fn = getattr(single, case)
    if kind is None:
        fn(cluster_store)
    else:
        fn(cluster_store, kind)


def test_every_store_key_is_in_one_slot_on_one_primary(redis_cluster, rq_redis_url):
    """Ingest, delivery, a dead letter, a parked event and a link: every key the store wrote
    carries the cluster prefix's hash tag, so they all sit on the one primary owning it."""

    async def body(store: Store) -> None:
        await single.accept(
            store,
            single.routed(single.Intent(single.T0, "a", "c1", set={"title": "x"}), "e1"),
            single.routed(single.Intent(single.T0, external_id="t9", set={"title": "y"}), "e2"),
        )
        [work] = await single.take_one(store)
        outcome = single.Outcome("dead", attempt={"n": 1}, reason="http_400", status=400)
        await store.settle(work, outcome, settings=single.D)
        await store.link("demo", "t9", "a", "c2", coalesce_ms=0)

    single.Runner(redis_cluster.url, rq_url=rq_redis_url).run(body)
    owner = redis_cluster.node_for_key(CLUSTER_PREFIX + "due")
    per_node = {}
    for i in redis_cluster.primaries():
        conn = redis_cluster.client(i)
        try:
            per_node[i] = [str(k) for k in conn.scan_iter(count=1000)]
        finally:
            conn.close()
    assert per_node[owner], "nothing was written"
    assert all(k.startswith(CLUSTER_PREFIX) for k in per_node[owner]), per_node[owner]
    assert all(not keys for i, keys in per_node.items() if i != owner), per_node


def test_a_script_touching_a_key_outside_its_slot_is_refused_by_the_server(redis_cluster):
    """The scripts open with a shebang and no allow-cross-slot-keys: a key built outside the
    declared slot (here: the single-server prefix) is an error, not a silent cross-slot
    write, so a slip in a script fails these tests."""
    owner = redis_cluster.node_for_key(CLUSTER_PREFIX + "due")
    conn = redis_cluster.client(owner)
    try:
        with pytest.raises(redis.ResponseError, match="same slot"):
            conn.eval(source("sweep"), 1, CLUSTER_PREFIX + "due", "cb:", 1000)
    finally:
        conn.close()
        redis_cluster.restart(owner)  # valkey 9.1.2 fails later scripts after one (cluster.py)
        redis_cluster.wait_healthy()


def test_kill_9_of_the_primary_loses_no_acknowledged_event_with_replica_durability(
    redis_cluster, rq_redis_url
):
    """With durability = "replica", an accept is answered only once the primary's replica
    holds it. kill -9 the primary under a stream of accepts: the cluster promotes the
    replica, the same Store follows it (no restart; it answers 503 until the promoted one
    has a replica again), and every event it acknowledged is there, pending for its
    conversation."""
    durability = RedisSettings(durability="replica", replicas=1, replica_timeout_ms=2000)
    owner = redis_cluster.node_for_key(CLUSTER_PREFIX + "due")
    acknowledged: list[str] = []

    def fail_over() -> None:
        """kill -9 the primary; once its replica is promoted (with no replica of its own:
        every write is answered 503 until then), the old one comes back as its replica."""
        redis_cluster.kill(owner)
        redis_cluster.wait_promoted(owner)
        redis_cluster.restart(owner)

    async def main() -> None:
        store = Store(redis_cluster.url, rq_url=rq_redis_url, durability=durability)
        try:
            failover = threading.Thread(target=fail_over)
            n = 0
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                n += 1
                convo = f"c{n}"
                intent = single.Intent(single.T0, "a", convo, set={"title": convo})
                try:
                    await single.accept(store, single.routed(intent, f"e{n}"))
                    acknowledged.append(convo)
                except StoreUnavailable:
                    await asyncio.sleep(0.05)  # the sender would retry later
                if n == 40:
                    failover.start()
                if n > 40 and not failover.is_alive() and len(acknowledged) >= 80:
                    break
            assert failover.ident is not None
            assert len(acknowledged) >= 80, "the store did not follow the promoted replica"
            missing = []
            for convo in acknowledged:
                state = await store.conversation(conversation_key("a", convo))
                if not state.pending:
                    missing.append(convo)
            assert missing == [], f"{len(missing)} acknowledged events lost: {missing[:5]}"
        finally:
            await store.close()

    asyncio.run(main())
    assert redis_cluster.node_for_key(CLUSTER_PREFIX + "due") != owner
