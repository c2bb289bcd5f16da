"""The store on a real Redis Cluster (tests/cluster.py: three valkey primaries, one replica
each), sharded (120 hash-tagged shards), with RQ on a Redis of its own: the same guarantees
as on one server, the work spread over the primaries, and a primary killed with kill -9
losing nothing acknowledged."""

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
from bridge.store.shards import DEFAULT_CLUSTER_SHARDS, Shards
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


def _run_case(case: str, kind: str | None, store: single.Runner) -> None:
    fn = getattr(single, case)
    if kind is None:
        fn(store)
    else:
        fn(store, kind)


@pytest.mark.parametrize(("case", "kind"), _case_ids(), ids=lambda x: str(x))
def test_the_single_server_guarantees_hold_on_redis_cluster(case, kind, cluster_store):
    _run_case(case, kind, cluster_store)


@pytest.mark.parametrize(("case", "kind"), _case_ids(), ids=lambda x: str(x))
def test_the_single_server_guarantees_hold_with_four_shards_on_one_server(case, kind, redis_url):
    """The sharded layout on one server (`[redis] shards = 4`): the same code paths as on
    Cluster (routing, the shared gate in shard 0, wakes published), quicker to run."""
    _run_case(case, kind, single.Runner(redis_url, settings=RedisSettings(shards=4)))


def test_a_busy_shard_does_not_starve_the_others(redis_url):
    """200 conversations due in one shard and one in each of the others: takes of 10 go
    round the shards from where the last stopped, so every other shard's conversation is
    taken within the first few takes, not after the busy shard's 200."""
    shards = Shards(4)

    async def body(store: Store) -> list[int]:
        busy, others = [], {}
        i = 0
        while len(busy) < 200 or len(others) < 3:
            ck = single.conversation_key("a", f"c{i}")
            shard = shards.of_conversation(ck)
            if shard == 0 and len(busy) < 200:
                busy.append(f"c{i}")
            elif shard and shard not in others:
                others[shard] = f"c{i}"
            i += 1
        events = [
            single.routed(single.Intent(single.T0, "a", c, set={"title": "x"}), f"e-{c}")
            for c in [*busy, *others.values()]
        ]
        await single.accept(store, *events)
        takes = []
        wanted = {single.conversation_key("a", c) for c in others.values()}
        for n in range(25):
            work, _ = await store.take(10, lease_ms=60_000, rate_limit=0)
            if wanted & {w.ck for w in work}:
                wanted -= {w.ck for w in work}
                takes.append(n)
        assert not wanted
        return takes

    takes = single.Runner(redis_url, settings=RedisSettings(shards=4)).run(body)
    assert max(takes) <= 3, takes  # not after the busy shard's 20 takes


@pytest.mark.parametrize("where", ["one server, 4 shards", "cluster, 120 shards"])
def test_a_wake_names_its_shard_and_ends_an_idle_wait_at_once(where, request):
    """Sharded, no worker can block on every shard's wake list: an accept publishes the
    wake, naming its shard (on Cluster, PUBLISH reaches every node); an idle wait (10 s
    timeout) ends at once, and the next take looks in that shard though it last found it
    empty."""
    if where.startswith("cluster"):
        url = request.getfixturevalue("redis_cluster").url
        rq_url = request.getfixturevalue("rq_redis_url")
        settings = RedisSettings()
    else:
        url = rq_url = request.getfixturevalue("redis_url")
        settings = RedisSettings(shards=4)

    async def main() -> tuple[float, int]:
        worker, waker, ingest = (Store(url, durability=settings, rq_url=rq_url) for _ in range(3))
        try:
            assert (await worker.take(5, lease_ms=5000, rate_limit=0))[0] == []  # all empty
            waiting = asyncio.create_task(worker.wait_for_work(waker, 10.0))
            await asyncio.sleep(0.3)  # subscribed
            began = time.monotonic()
            event = single.routed(single.Intent(single.T0, "a", "woken", set={"title": "x"}), "w")
            await single.accept(ingest, event)
            await waiting
            took = time.monotonic() - began
            work, _ = await worker.take(5, lease_ms=5000, rate_limit=0)
            return took, len(work)
        finally:
            for store in (worker, waker, ingest):
                await store.close()

    took, taken = asyncio.run(main())
    assert took < 5.0 and taken == 1, (took, taken)


def test_conversations_spread_over_the_primaries_each_key_in_its_shards_slot(
    redis_cluster, rq_redis_url
):
    """1,500 conversations, a dead letter, a parked event and a link: every key carries one
    of the 120 shards' hash tags, and the keys (so the work) spread over the three
    primaries within ±15 % of a third each."""

    async def body(store: Store) -> None:
        events = [
            single.routed(single.Intent(single.T0, "a", f"c{i}", set={"title": "x"}), f"e{i}")
            for i in range(1500)
        ]
        events.append(
            single.routed(single.Intent(single.T0, external_id="t9", set={"title": "y"}), "p")
        )
        await single.accept(store, *events)
        [work] = (await store.take(1, lease_ms=5000, rate_limit=0))[0]
        outcome = single.Outcome("dead", attempt={"n": 1}, reason="http_400", status=400)
        await store.settle(work, outcome, settings=single.D)
        assert await store.link("demo", "t9", "a", "c2", coalesce_ms=0) == "replayed"
        assert len(await store.dead_letter_ids()) == 1

    single.Runner(redis_cluster.url, rq_url=rq_redis_url).run(body)
    shards = Shards(DEFAULT_CLUSTER_SHARDS, cluster=True)
    per_node = {}
    for i in redis_cluster.primaries():
        conn = redis_cluster.client(i)
        try:
            per_node[i] = [str(k) for k in conn.scan_iter(count=1000)]
        finally:
            conn.close()
    for keys in per_node.values():  # and the record of the layout (the shard count)
        assert all(k.startswith(shards.prefixes) or k == "{cb}:layout" for k in keys), keys[:5]
    counts = sorted(len(keys) for keys in per_node.values())
    mean = sum(counts) / len(counts)
    assert counts[0] >= 0.85 * mean and counts[-1] <= 1.15 * mean, counts


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
    first = Shards(DEFAULT_CLUSTER_SHARDS, cluster=True).prefixes[0] + "due"
    owner = redis_cluster.node_for_key(first)
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
    assert redis_cluster.node_for_key(first) != owner


def test_a_redis_written_with_another_shard_count_is_refused_saying_which(redis_url):
    """A shard count changed on a Redis holding work would leave every key written before
    out of sight: the store refuses it (503s, and this message) until the count is set back,
    whichever way it changed."""

    async def refused(writer: RedisSettings, reader: RedisSettings) -> str:
        one, other = Store(redis_url, durability=writer), Store(redis_url, durability=reader)
        try:
            event = single.Intent(single.T0, "a", "c", set={"title": "x"})
            await single.accept(one, single.routed(event, "e"))
            with pytest.raises(StoreUnavailable) as err:
                await other.take(1, lease_ms=1000, rate_limit=0)
            assert await other.ping() is False  # /readyz: not ready, no 500
            return str(err.value)
        finally:
            await one.close()
            await other.close()
            (await asyncio.to_thread(redis.Redis.from_url, redis_url)).flushall()

    up = asyncio.run(refused(RedisSettings(), RedisSettings(shards=4)))
    assert "one-shard layout" in up and "shards = 1" in up
    down = asyncio.run(refused(RedisSettings(shards=4), RedisSettings()))
    assert "layout of 4 shards" in down and "shards = 4" in down
    other = asyncio.run(refused(RedisSettings(shards=4), RedisSettings(shards=8)))
    assert "layout of 4 shards" in other


def test_a_redis_holding_only_links_of_the_one_shard_layout_is_refused_when_sharded(redis_url):
    """An empty queue but links set: sharding over it would hide every link (events would
    park or go to their fallback), so it is refused too."""

    async def main() -> str:
        one = Store(redis_url)
        four = Store(redis_url, durability=RedisSettings(shards=4))
        try:
            await one.set_link_only("demo", "T-1", "a", "c")
            with pytest.raises(StoreUnavailable) as err:
                await four.get_link("demo", "T-1")
            return str(err.value)
        finally:
            await one.close()
            await four.close()

    assert "links of the one-shard layout" in asyncio.run(main())


def test_with_a_primary_down_takes_and_renewals_go_on_in_the_other_shards(
    redis_cluster, rq_redis_url
):
    """kill -9 of one primary (before its replica is promoted): a take still leases what is
    due in the other primaries' shards, and a renewal still extends the leases held there,
    reporting only the dead primary's as not renewed. Before, one failed shard failed the
    whole call: the take's other leases were dropped unused (those conversations waited for
    the lease to lapse plus the in-doubt quiet time, ~40 s), and every lease read as lost."""
    shards = Shards(DEFAULT_CLUSTER_SHARDS, cluster=True)
    first_owner = redis_cluster.node_for_key(shards.prefixes[0] + "due")
    victim = next(p for p in redis_cluster.primaries() if p != first_owner)  # not the gate's

    def on_victim(ck: str) -> bool:
        return redis_cluster.node_for_key(shards.prefixes[shards.of_conversation(ck)]) == victim

    async def main() -> None:
        store = Store(redis_cluster.url, rq_url=rq_redis_url)
        try:
            held_events = [
                single.routed(single.Intent(single.T0, "a", f"h{i}", set={"title": "x"}), f"h{i}")
                for i in range(150)
            ]
            await single.accept(store, *held_events)
            held, _ = await store.take(500, lease_ms=60_000, rate_limit=0)
            assert len(held) == 150
            due_events = [
                single.routed(single.Intent(single.T0, "a", f"d{i}", set={"title": "x"}), f"d{i}")
                for i in range(150)
            ]
            await single.accept(store, *due_events)
            due_cks = {conversation_key("a", f"d{i}") for i in range(150)}
            live_due = {ck for ck in due_cks if not on_victim(ck)}
            assert 0 < len(live_due) < len(due_cks)  # some in the victim's shards, some not

            expected = [not on_victim(w.ck) for w in held]  # asked while the victim is up
            redis_cluster.kill(victim)
            renewed = await store.renew([(w.ck, w.token) for w in held], 60_000)
            assert renewed == expected

            taken: set[str] = set()
            for _ in range(5):  # the victim's shards fail (until its replica takes over)
                work, _ = await store.take(500, lease_ms=60_000, rate_limit=0)
                taken |= {w.ck for w in work}
                if live_due <= taken:
                    break
            assert live_due <= taken <= due_cks
        finally:
            await store.close()

    asyncio.run(main())


@pytest.mark.parametrize("looks", [True, False], ids=["its-look-first", "its-scripts-first"])
def test_a_take_after_a_failover_asks_the_moved_shards_again_in_the_same_call(
    looks, redis_cluster, rq_redis_url
):
    """A manual failover after the store learned the cluster's map: the old primary answers
    MOVED for its shards (it ran nothing). The take's look at every shard's head reads the
    map again and looks once more; the take's scripts, each server's shards in one pipeline,
    ask the moved ones again on the fresh map: either way one take leases everything due.
    (Before, the look failed the take with StoreUnavailable, and a moved shard's take went
    unanswered until the next.)"""
    shards = Shards(DEFAULT_CLUSTER_SHARDS, cluster=True)
    gate = redis_cluster.node_for_key(shards.prefixes[0] + "due")
    old = next(p for p in redis_cluster.primaries() if p != gate)

    async def main() -> set[str]:
        store = Store(redis_cluster.url, rq_url=rq_redis_url)
        try:
            events = [
                single.routed(single.Intent(single.T0, "a", f"c{i}", set={"title": "x"}), f"e{i}")
                for i in range(60)
            ]
            await single.accept(store, *events)  # the map learned
            await asyncio.to_thread(redis_cluster.fail_over, old)
            if not looks:  # as if the take's look (every 2 s) had just run
                store._looked_at = time.monotonic()
            work, _ = await store.take(500, lease_ms=60_000, rate_limit=0)
            return {w.ck for w in work}
        finally:
            await store.close()

    assert asyncio.run(main()) == {conversation_key("a", f"c{i}") for i in range(60)}


def test_a_failed_wake_subscription_is_made_again_once_redis_is_back(tmp_path):
    """Sharded, a worker waits for wakes on a subscription. Redis gone as it subscribes:
    the wait fails as the store being unavailable (the take loop backs off and goes on;
    redis-py's RuntimeError for a pubsub without a connection would end it); once Redis is
    back, the next wait subscribes again and a wake ends it. (This sequence also passed
    before the review's fix: redis-py subscribes again to the channels it recorded.)"""
    from bridge.local.redis_server import RedisServer

    server = RedisServer(tmp_path / "redis")
    server.start()
    settings = RedisSettings(shards=4)

    async def main() -> float:
        store = Store(server.url, durability=settings)
        try:
            assert (await store.take(5, lease_ms=5000, rate_limit=0))[0] == []  # layout known
            server.stop()
            with pytest.raises(StoreUnavailable):
                await store.wait_for_work(store, 1.0)
            server.start()
            waiting = asyncio.create_task(store.wait_for_work(store, 10.0))
            publisher = redis.Redis.from_url(server.url)
            try:
                deadline = time.monotonic() + 8
                while publisher.pubsub_numsub("cb.wake")[0][1] < 1:  # subscribed again
                    assert time.monotonic() < deadline, "no subscription after Redis came back"
                    await asyncio.sleep(0.05)
                began = time.monotonic()
                publisher.publish("cb.wake", "1")
            finally:
                publisher.close()
            await waiting
            return time.monotonic() - began
        finally:
            await store.close()

    try:
        took = asyncio.run(main())
    finally:
        server.stop()
    assert took < 5.0, took
