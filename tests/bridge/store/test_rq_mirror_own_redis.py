"""RQ on a Redis of its own (RQ_REDIS_URL): dead letters are failed jobs there, and only
there; `rq requeue` on it replays them on the store's Redis; dropping a dead letter drops
its job there; a job left behind by a worker that died is cleaned up by the reconcile.
Two real Redis servers, real worker threads, RQ's own command line."""

import os
import subprocess
import sys
import time

import httpx
import pytest
import redis
from rq.job import Job
from rq.registry import FailedJobRegistry

from bridge.store.keys import RQ_QUEUE
from bridge.store.rq_mirror import mirror_one, reconcile
from tests.bridge.store.test_rq_mirror import dead_ids, failed_ids, send
from tests.conftest import convo, wait_until
from tests.servers import rq

T0 = int(time.time() * 1000) - 60_000


@pytest.fixture
def bridge_env(bridge_env, rq_redis_url):
    return {**bridge_env, "RQ_REDIS_URL": rq_redis_url}


@pytest.fixture
def conn(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def rq_conn(rq_redis_url):
    client = redis.Redis.from_url(rq_redis_url)
    yield client
    client.close()


def make_dead_letters(ingest_url, sandbox_url, conn, n=1):
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"script": [422] * n})
    for i in range(n):
        send(ingest_url, f"c{i}", f"refused {i}")
    return wait_until(lambda: len(ids := dead_ids(conn)) == n and ids, timeout_s=15)


def test_a_dead_letter_is_a_failed_job_on_rqs_redis_and_not_on_the_stores(
    start_worker, ingest_url, sandbox_url, conn, rq_conn, rq_redis_url
):
    start_worker()
    [dl_id] = make_dead_letters(ingest_url, sandbox_url, conn)
    assert wait_until(lambda: failed_ids(rq_conn), timeout_s=10) == [dl_id]
    text = Job.fetch(dl_id, connection=rq_conn).latest_result().exc_string
    assert "DeadLetter: rejected_422" in text and "conversation: a/c0" in text
    assert failed_ids(conn) == [] and not conn.keys("rq:job:*")
    assert "1 failed" in rq("info", "-Q", url=rq_redis_url).stdout


def test_rq_requeue_on_rqs_redis_replays_the_dead_letter_on_the_stores(
    start_worker, ingest_url, sandbox_url, conn, rq_conn, rq_redis_url
):
    start_worker()
    [dl_id] = make_dead_letters(ingest_url, sandbox_url, conn)
    wait_until(lambda: failed_ids(rq_conn) == [dl_id], timeout_s=10)
    done = rq("requeue", "--queue", RQ_QUEUE, dl_id, url=rq_redis_url)
    assert done.returncode == 0, done.stderr
    wait_until(
        lambda: Job.fetch(dl_id, connection=rq_conn).get_status() == "finished", timeout_s=15
    )
    assert Job.fetch(dl_id, connection=rq_conn).return_value() == "replayed"
    wait_until(lambda: (convo(sandbox_url, "a", "c0") or {}).get("title") == "refused 0")
    assert dead_ids(conn) == [] and failed_ids(rq_conn) == []


def test_purging_or_replaying_a_dead_letter_drops_its_failed_job_from_rqs_redis(
    start_worker, ingest_url, sandbox_url, conn, rq_conn, bridge_env, settings
):
    start_worker()
    first, second = make_dead_letters(ingest_url, sandbox_url, conn, n=2)
    wait_until(lambda: failed_ids(rq_conn) == [first, second], timeout_s=10)
    env = {**os.environ, **bridge_env, "BRIDGE_CONFIG": settings.path}

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "bridge.cli", *args], env=env, capture_output=True, timeout=60
        )

    assert cli("dlq", "purge", first).returncode == 0
    wait_until(lambda: failed_ids(rq_conn) == [second], timeout_s=5)
    assert not rq_conn.exists(Job.key_for(first), f"rq:results:{first}")
    assert cli("dlq", "replay", second).returncode == 0
    wait_until(lambda: failed_ids(rq_conn) == [], timeout_s=5)
    assert not rq_conn.exists(Job.key_for(second))
    assert not conn.exists("cb:rqgone")  # the workers emptied it


def _dead_letter(conn, dl_id):
    conn.hset(f"cb:dl:{dl_id}", mapping={"id": dl_id, "reason": "max_attempts", "ck": "a/x",
                                           "source": "", "external_id": "", "created": "1"})  # fmt: skip
    conn.zadd("cb:dlq", {dl_id: 1})


def test_a_failed_job_whose_dead_letter_is_gone_is_dropped_by_the_reconcile(conn, rq_conn):
    _dead_letter(conn, "1-1")
    _dead_letter(conn, "1-2")
    assert mirror_one(conn, "1-1", rq=rq_conn)
    conn.delete("cb:dl:1-1")
    conn.zrem("cb:dlq", "1-1")  # dropped by a script while no worker ran
    rq_conn.zadd(
        FailedJobRegistry(RQ_QUEUE, connection=rq_conn).key, {"a-uuid-job": time.time() + 3600}
    )
    assert reconcile(conn, rq=rq_conn) == 1  # 1-2's job made
    assert failed_ids(rq_conn) == ["1-2", "a-uuid-job"]  # RQ's own failed jobs are kept
    assert not rq_conn.exists(Job.key_for("1-1"))


def test_a_dead_letter_dropped_while_its_job_is_made_leaves_no_job(conn, rq_conn):
    assert not mirror_one(conn, "1-9", rq=rq_conn)  # already gone: nothing made
    assert failed_ids(rq_conn) == [] and not rq_conn.exists(Job.key_for("1-9"))
