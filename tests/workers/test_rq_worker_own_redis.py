"""The delivery worker with RQ on a Redis of its own (RQ_REDIS_URL): RQ's command line
pointed at that Redis lists the worker (`rq info`), pauses and resumes it (`rq suspend`,
`rq resume`), and starts it (`rq worker -w workers.DeliveryWorker`); the store's Redis holds
none of RQ's keys; `status` counts the worker and the pause from RQ's Redis."""

import time

import httpx
import pytest
import redis

from bridge.app import build_app
from bridge.config import load_settings
from bridge.store.keys import RQ_QUEUE
from tests.conftest import SECRET, convo, wait_until, write_config
from tests.servers import (
    cli_logged,
    rq,
    rq_worker,
    rq_workers,
    serve_app_in_thread,
    status_json,
    stop,
)
from tests.signing import signed

T0 = int(time.time() * 1000) - 60_000


def send(url, convo_id, title):
    payload = {"agent_id": "a", "convo_id": convo_id, "occurred_at": T0, "set": {"title": title}}
    body, headers = signed(SECRET, payload)
    answer = httpx.post(f"{url}/webhooks/demo", content=body, headers=headers)
    assert answer.status_code == 202, answer.text


def title(sandbox_url, convo_id):
    return (convo(sandbox_url, "a", convo_id) or {}).get("title")


@pytest.fixture
def env(bridge_env, tmp_path, rq_redis_url):
    import os

    return {
        **os.environ,
        **bridge_env,
        "RQ_REDIS_URL": rq_redis_url,
        "BRIDGE_CONFIG": str(write_config(tmp_path)),
    }


@pytest.fixture
def ingest(env):
    with serve_app_in_thread(build_app(load_settings(env["BRIDGE_CONFIG"], env))) as url:
        yield url


def test_rq_info_suspend_and_resume_on_rqs_own_redis_drive_the_worker(
    tmp_path, env, ingest, sandbox_url, redis_url, rq_redis_url
):
    proc = cli_logged("worker", env=env, log=tmp_path / "w")
    try:
        [worker] = wait_until(lambda: rq_workers(rq_redis_url), timeout_s=30)
        assert rq_workers(redis_url) == []
        assert f"{worker.name} (" in rq("info", "-W", url=rq_redis_url).stdout
        assert status_json(env)["workers_alive"] == 1
        assert "Suspending workers" in rq("suspend", url=rq_redis_url).stdout
        wait_until(lambda: rq_workers(rq_redis_url)[0].get_state() == "suspended", timeout_s=5)
        send(ingest, "during", "waits")
        time.sleep(1.5)
        assert title(sandbox_url, "during") is None  # nothing was sent
        assert status_json(env)["delivery_paused"] is True
        rq("resume", url=rq_redis_url)
        wait_until(lambda: title(sandbox_url, "during") == "waits", timeout_s=10)
    finally:
        stop([proc])
    store = redis.Redis.from_url(redis_url)
    try:
        assert store.keys("rq:*") == []  # RQ's keys are all on its own Redis
    finally:
        store.close()


def test_rq_worker_started_by_rqs_command_line_on_its_own_redis_delivers(
    tmp_path, env, ingest, sandbox_url, redis_url, rq_redis_url
):
    proc = rq_worker(
        "-w", "workers.DeliveryWorker", RQ_QUEUE, url=rq_redis_url, env=env, log=tmp_path / "w"
    )
    try:
        wait_until(lambda: rq_workers(rq_redis_url), timeout_s=30)
        send(ingest, "c1", "via rq worker")
        wait_until(lambda: title(sandbox_url, "c1") == "via rq worker", timeout_s=15)
    finally:
        stop([proc])
    assert proc.returncode == 0
