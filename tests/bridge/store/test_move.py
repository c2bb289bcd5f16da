"""`convo-bridge migrate --from URL` (bridge/store/move.py): a store's queue, links and dedup
keys moved onto another Redis or another shard count, run as the real command on real
servers, then used through the target's Store: what was waiting is delivered with its values,
newest wins against what was applied before the move, a re-sent event is still a duplicate,
a link still routes; and what it refuses, before writing anything."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from bridge.config import RedisSettings
from bridge.intents import Intent
from bridge.store import Outcome, Store, conversation_key
from tests.bridge.store.test_store import T0, D, accept, routed


def migrate(source_url: str, target_url: str, tmp: Path, *, shards: int = 0, rq_url: str = ""):
    config = tmp / "config.toml"
    config.write_text(f"[redis]\nshards = {shards}\n")
    env = {
        **os.environ,
        "REDIS_URL": target_url,
        "RQ_REDIS_URL": rq_url,
        "BRIDGE_CONFIG": str(config),
    }
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", "migrate", "--from", source_url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


async def fill(store: Store) -> None:
    """On the source: conversation c1 waiting (e0 replaced by the newer e1), c2 delivered
    (its title applied), and a link."""
    await accept(store, routed(Intent(T0, "a", "c1", set={"title": "older"}), "e0"))
    await accept(store, routed(Intent(T0 + 10, "a", "c1", set={"title": "waiting"}), "e1"))
    await accept(store, routed(Intent(T0 + 5, "a", "c2", set={"title": "applied"}), "e2"))
    work, _ = await store.take(10, lease_ms=5000, rate_limit=0)
    [done] = [w for w in work if w.ck == conversation_key("a", "c2")]
    await store.settle(done, Outcome("ok", sent=done.entries), settings=D)
    [held] = [w for w in work if w.ck == conversation_key("a", "c1")]
    # c1 back in `due` untouched, as a stopped worker would leave it
    await store.settle(held, Outcome("retry", retry_in_ms=0), settings=D)
    await store.set_link_only("demo", "T-1", "a", "c3")


async def check(store: Store) -> None:
    """On the target, after the move."""
    work, _ = await store.take(10, lease_ms=5000, rate_limit=0)
    assert [w.ck for w in work] == [conversation_key("a", "c1")]
    assert {e.name: e.payload for e in work[0].entries} == {"f:title": "waiting"}
    await store.settle(work[0], Outcome("ok", sent=work[0].entries), settings=D)
    # newest wins against the value applied before the move; a re-send is a duplicate
    late = await accept(store, routed(Intent(T0 + 1, "a", "c2", set={"title": "late"}), "e9"))
    again = await accept(store, routed(Intent(T0 + 5, "a", "c2", set={"title": "applied"}), "e2"))
    assert (late.accepted, again.duplicates) == (1, 1)
    assert (await store.take(10, lease_ms=5000, rate_limit=0))[0] == []
    assert await store.get_link("demo", "T-1") == ("a", "c3")


def run(url: str, body, *, shards: int = 0, rq_url: str = ""):
    async def main():
        store = Store(url, durability=RedisSettings(shards=shards), rq_url=rq_url)
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def test_a_single_servers_queue_links_and_dedup_keys_move_onto_a_cluster(
    redis_url, redis_cluster, rq_redis_url, tmp_path
):
    run(redis_url, fill)
    before = sorted(redis.Redis.from_url(redis_url).keys("*"))
    done = migrate(redis_url, redis_cluster.url, tmp_path, rq_url=rq_redis_url)
    assert done.returncode == 0, done.stderr
    assert "moved 2 conversations (1 with changes waiting" in done.stdout
    assert "1 links, 2 dedup keys into their conversation's shard" in done.stdout
    # e0's: e1 replaced its change, so its conversation is not known
    assert "wrote 1 dedup keys of events a newer event replaced into every shard" in done.stdout
    run(redis_cluster.url, check, rq_url=rq_redis_url)
    e0 = routed(Intent(T0, "a", "c1", set={"title": "older"}), "e0")
    dup = run(redis_cluster.url, lambda s: accept(s, e0), rq_url=rq_redis_url)
    assert dup.duplicates == 1
    assert sorted(redis.Redis.from_url(redis_url).keys("*")) == before  # the source as it was


def test_a_clusters_queue_moves_back_onto_one_server(redis_cluster, rq_redis_url, tmp_path):
    run(redis_cluster.url, fill, rq_url=rq_redis_url)
    cluster_url = redis_cluster.url
    done = migrate(cluster_url, rq_redis_url, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "moved 2 conversations" in done.stdout and "3 dedup keys" in done.stdout
    run(rq_redis_url, check)


@pytest.mark.parametrize(("source_shards", "target_shards"), [(1, 4), (4, 1)])
def test_the_shard_count_changes_by_moving_to_another_redis(
    source_shards, target_shards, redis_url, rq_redis_url, tmp_path
):
    run(redis_url, fill, shards=source_shards)
    done = migrate(redis_url, rq_redis_url, tmp_path, shards=target_shards)
    assert done.returncode == 0, done.stderr
    run(rq_redis_url, check, shards=target_shards)


def test_a_source_with_dead_letters_is_refused_and_nothing_is_written(
    redis_url, rq_redis_url, tmp_path
):
    async def dead(store: Store) -> None:
        await accept(store, routed(Intent(T0, "a", "c", set={"title": "x"}), "e1"))
        [work], _ = await store.take(1, lease_ms=5000, rate_limit=0)
        await store.settle(work, Outcome("dead", reason="rejected_404"), settings=D)

    run(redis_url, dead)
    done = migrate(redis_url, rq_redis_url, tmp_path)
    assert done.returncode == 1
    assert "1 dead letters" in done.stderr and "dlq replay --all" in done.stderr
    assert redis.Redis.from_url(rq_redis_url).dbsize() == 0


def test_a_conversation_held_by_a_worker_is_refused(redis_url, rq_redis_url, tmp_path):
    async def held(store: Store) -> None:
        await accept(store, routed(Intent(T0, "a", "c", set={"title": "x"}), "e1"))
        await store.take(1, lease_ms=60_000, rate_limit=0)

    run(redis_url, held)
    done = migrate(redis_url, rq_redis_url, tmp_path)
    assert done.returncode == 1 and "held by a worker" in done.stderr


def test_a_target_already_in_use_is_refused(redis_url, rq_redis_url, tmp_path):
    run(redis_url, fill)
    run(rq_redis_url, lambda s: s.set_link_only("demo", "T-2", "a", "c9"))
    done = migrate(redis_url, rq_redis_url, tmp_path)
    assert done.returncode == 1 and "already holds the store's keys" in done.stderr
    assert migrate(redis_url, redis_url, tmp_path).returncode == 2  # --from is REDIS_URL


def test_a_move_stopped_half_way_runs_again_over_what_it_wrote(redis_url, rq_redis_url, tmp_path):
    """The marker a run leaves on the target until it is done lets the next run write it all
    again: the lists (attempts) are replaced, not appended to."""
    run(redis_url, fill)
    assert migrate(redis_url, rq_redis_url, tmp_path).returncode == 0
    target = redis.Redis.from_url(rq_redis_url)
    source = redis.Redis.from_url(redis_url)
    # as if stopped half way, after writing a conversation the source has since delivered
    run_id = source.info("server")["run_id"]
    target.set("cb:moving", f"{redis_url}, 1 shards, server {run_id}")
    target.hset("cb:p:a/gone", "f:title", "stale")
    target.zadd("cb:due", {"a/gone": 1})
    done = migrate(redis_url, rq_redis_url, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "cleared" in done.stdout
    assert target.exists("cb:moving", "cb:p:a/gone") == 0
    assert target.zscore("cb:due", "a/gone") is None
    ck = conversation_key("a", "c1")
    assert target.lrange(f"cb:att:{ck}", 0, -1) == source.lrange(f"cb:att:{ck}", 0, -1) != []
    run(rq_redis_url, check)


def test_a_source_written_to_during_the_move_fails_it_and_keeps_the_marker(
    redis_url, rq_redis_url, monkeypatch, tmp_path
):
    """Serve still running on the source: an event accepted there while the keys are read
    would be left behind, so the move fails, saying why, and leaves its marker for the next
    run."""
    from bridge.store import move as moving

    run(redis_url, fill)
    read = moving._read
    written = []

    async def read_then_accept(client, keys):
        got = await read(client, keys)
        if not written:
            written.append(1)
            late = Store(redis_url)
            try:
                await accept(late, routed(Intent(T0 + 20, "a", "c4", set={"title": "x"}), "e7"))
            finally:
                await late.close()
        return got

    monkeypatch.setattr(moving, "_read", read_then_accept)

    async def body():
        source, target = Store(redis_url), Store(rq_redis_url, migrating=True)
        try:
            with pytest.raises(moving.MoveRefused, match="the source changed while moving"):
                await moving.move(source, target, quiet_ms=0)
        finally:
            await source.close()
            await target.close()

    asyncio.run(body())
    assert redis.Redis.from_url(rq_redis_url).exists("cb:moving") == 1
    assert migrate(redis_url, rq_redis_url, tmp_path).returncode == 0  # the rerun finishes it
    assert redis.Redis.from_url(rq_redis_url).exists("cb:moving") == 0


def test_a_stopped_move_from_another_source_an_empty_source_and_the_same_server_are_refused(
    redis_url, rq_redis_url, tmp_path
):
    empty = migrate(redis_url, rq_redis_url, tmp_path)
    assert empty.returncode == 1 and "holds none of the store's keys" in empty.stderr
    run(redis_url, fill)
    target = redis.Redis.from_url(rq_redis_url)
    target.set("cb:moving", "redis://elsewhere:6379/0, 1 shards")
    other = migrate(redis_url, rq_redis_url, tmp_path)
    assert other.returncode == 1 and "a stopped move from redis://elsewhere" in other.stderr
    alias = redis_url.removesuffix("/0")  # the same server and database, named otherwise
    same = migrate(redis_url, alias, tmp_path)
    assert same.returncode == 1 and "own server and database" in same.stderr


def test_after_the_move_a_worker_on_the_cluster_delivers_what_waited_on_the_old_server(
    redis_url, redis_cluster, rq_redis_url, sandbox_url, tmp_path
):
    """Queue on one server, move, then a real `convo-bridge worker --burst` on the cluster
    PATCHes the sandbox with the waiting value; an event named by the moved link is routed
    to its conversation."""
    import httpx

    from tests.conftest import SECRET, write_config

    run(redis_url, fill)
    assert migrate(redis_url, redis_cluster.url, tmp_path, rq_url=rq_redis_url).returncode == 0
    linked = routed(Intent(T0 + 30, external_id="T-1", set={"title": "by link"}), "e5")
    run(redis_cluster.url, lambda s: accept(s, linked), rq_url=rq_redis_url)
    env = {
        **os.environ,
        "DEMO_SECRET": SECRET,
        "REDIS_URL": redis_cluster.url,
        "RQ_REDIS_URL": rq_redis_url,
        "CONVOCORE_BASE_URL": sandbox_url,
        "CONVOCORE_API_TOKEN": "test-token",
        "BRIDGE_CONFIG": str(write_config(tmp_path / "worker")),
    }
    done = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "worker", "--burst"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    convos = httpx.get(f"{sandbox_url}/_sandbox/convos").json()
    assert convos["a/c1"]["title"] == "waiting"
    assert convos["a/c3"]["title"] == "by link"
    assert "a/c2" not in convos  # delivered before the move, on the old server's sandbox


def test_serve_and_workers_refuse_a_redis_a_move_has_not_finished_writing(redis_url, rq_redis_url):
    """A move stopped half way leaves its marker: a store on the target answers 503 saying
    to finish the move, so nothing is accepted there that the rerun (which clears what the
    move wrote) would drop."""
    from bridge.errors import StoreUnavailable

    run(redis_url, fill)
    redis.Redis.from_url(rq_redis_url).set("cb:moving", f"{redis_url}, 1 shards, server x")

    async def body():
        serve = Store(rq_redis_url)
        try:
            assert await serve.ping() is False  # /readyz: not ready
            with pytest.raises(StoreUnavailable, match="migrate` that has not finished"):
                await accept(serve, routed(Intent(T0, "a", "c9", set={"title": "y"}), "e9"))
        finally:
            await serve.close()

    asyncio.run(body())
