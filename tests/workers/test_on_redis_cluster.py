"""serve and a `convo-bridge worker` process on a real Redis Cluster (tests/cluster.py), RQ
on a Redis of its own (RQ_REDIS_URL): webhooks are delivered, a dead letter is an RQ failed
job on RQ's Redis that `rq requeue` replays, and `status` reads the queue off the cluster."""

from __future__ import annotations

import os
import time

import httpx
import pytest
import redis
from rq.job import Job
from rq.registry import FailedJobRegistry

from bridge.app import build_app
from bridge.config import load_settings
from bridge.store.keys import RQ_QUEUE
from tests.conftest import SECRET, convo, wait_until, write_config
from tests.servers import cli_logged, rq, serve_app_in_thread, status_json, stop
from tests.signing import signed

T0 = int(time.time() * 1000) - 60_000


def send(url: str, convo_id: str, title: str, at: int = T0) -> None:
    payload = {"agent_id": "a", "convo_id": convo_id, "occurred_at": at, "set": {"title": title}}
    body, headers = signed(SECRET, payload)
    answer = httpx.post(f"{url}/webhooks/demo", content=body, headers=headers)
    assert answer.status_code == 202, answer.text


def title(sandbox_url: str, convo_id: str) -> str | None:
    return (convo(sandbox_url, "a", convo_id) or {}).get("title")


@pytest.fixture
def env(bridge_env, tmp_path, redis_cluster, rq_redis_url):
    return {
        **os.environ,
        **bridge_env,
        "REDIS_URL": redis_cluster.url,
        "RQ_REDIS_URL": rq_redis_url,
        "BRIDGE_CONFIG": str(write_config(tmp_path)),
    }


def test_webhooks_are_delivered_and_a_dead_letter_is_replayed_by_rq_requeue(
    tmp_path, env, sandbox_url, rq_redis_url
):
    with serve_app_in_thread(build_app(load_settings(env["BRIDGE_CONFIG"], env))) as ingest:
        proc = cli_logged("worker", env=env, log=tmp_path / "w")
        try:
            send(ingest, "c1", "first")
            wait_until(lambda: title(sandbox_url, "c1") == "first", timeout_s=20)

            # a 400 dead-letters the next PATCH: an RQ failed job on RQ's own Redis
            httpx.post(f"{sandbox_url}/_sandbox/faults", json={"script": [400]})
            send(ingest, "c2", "refused")
            conn = redis.Redis.from_url(rq_redis_url)
            failed = FailedJobRegistry(RQ_QUEUE, connection=conn)
            [dl_id] = wait_until(failed.get_job_ids, timeout_s=20)
            assert Job.fetch(dl_id, connection=conn).get_status() == "failed"
            assert status_json(env)["dead_letters"] == 1
            assert title(sandbox_url, "c2") is None

            # `rq requeue --all` on RQ's Redis replays it into the cluster's queue
            done = rq("requeue", "--all", "--queue", RQ_QUEUE, url=rq_redis_url)
            assert done.returncode == 0, done.stderr
            wait_until(lambda: title(sandbox_url, "c2") == "refused", timeout_s=30)
            wait_until(lambda: status_json(env)["dead_letters"] == 0, timeout_s=20)
        finally:
            stop([proc], 30)
