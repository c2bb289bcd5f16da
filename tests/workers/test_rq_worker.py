"""The delivery worker as RQ sees and drives it, through RQ's own command line: `rq worker
-w workers.DeliveryWorker` delivers, `rq info` shows its state and counts, `rq suspend` /
`rq resume` pause and resume delivery, RQ's shutdown command stops it cleanly."""

import time
from typing import Any

import httpx
import pytest
import redis
from rq.command import send_shutdown_command

from bridge.app import build_app
from bridge.config import load_settings
from bridge.store.keys import RQ_QUEUE
from tests.conftest import SECRET, convo, wait_until, write_config
from tests.servers import cli_logged, rq, rq_worker, rq_workers, serve_app_in_thread, stop
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
def env(bridge_env, tmp_path):
    return {**bridge_env, "BRIDGE_LOG_FORMAT": "text", "BRIDGE_CONFIG": str(write_config(tmp_path))}


@pytest.fixture
def ingest(env):
    with serve_app_in_thread(build_app(load_settings(env["BRIDGE_CONFIG"], env))) as url:
        yield url


def test_rq_worker_with_the_delivery_class_delivers_and_rq_info_shows_it(
    tmp_path, env, ingest, sandbox_url, redis_url
):
    proc = rq_worker(
        "-w", "workers.DeliveryWorker", RQ_QUEUE, url=redis_url, env=env, log=tmp_path / "w"
    )
    try:
        [worker] = wait_until(lambda: rq_workers(redis_url), timeout_s=30)
        send(ingest, "c1", "via rq worker")
        wait_until(lambda: title(sandbox_url, "c1") == "via rq worker", timeout_s=15)
        line = f"{worker.name} ("
        info = wait_until(
            lambda: (
                out
                if "jobs: 1 finished, 0 failed" in (out := rq("info", url=redis_url).stdout)
                else None
            ),
            timeout_s=10,
        )
        assert line in info and "idle convo-bridge" in info
        assert "convo-bridge |" in info  # the queue is listed
    finally:
        stop([proc])
    assert proc.returncode == 0


def test_rq_suspend_pauses_delivery_and_rq_resume_resumes_it(
    tmp_path, env, ingest, sandbox_url, redis_url
):
    proc = cli_logged("worker", env=env, log=tmp_path / "w")
    try:
        wait_until(lambda: rq_workers(redis_url), timeout_s=30)
        httpx.post(f"{sandbox_url}/_sandbox/faults", json={"latency_ms": 1500})
        send(ingest, "before", "in flight")
        wait_until(
            lambda: httpx.get(f"{sandbox_url}/_sandbox/stats").json()["max_inflight"], timeout_s=10
        )
        assert "Suspending workers" in rq("suspend", url=redis_url).stdout
        wait_until(lambda: rq_workers(redis_url)[0].get_state() == "suspended", timeout_s=5)
        send(ingest, "during", "waits")
        time.sleep(2.5)
        assert title(sandbox_url, "before") == "in flight"  # the PATCH in flight finished
        assert title(sandbox_url, "during") is None  # nothing new was sent
        assert "suspended convo-bridge" in rq("info", "-W", url=redis_url).stdout
        rq("resume", url=redis_url)
        wait_until(lambda: title(sandbox_url, "during") == "waits", timeout_s=10)
        wait_until(lambda: rq_workers(redis_url)[0].get_state() == "idle", timeout_s=10)
    finally:
        stop([proc])


def test_rq_shutdown_command_stops_the_worker_cleanly(
    tmp_path, env, ingest, sandbox_url, redis_url
):
    log = tmp_path / "w"
    proc = cli_logged("worker", env=env, log=log)
    try:
        [worker] = wait_until(lambda: rq_workers(redis_url), timeout_s=30)
        httpx.post(f"{sandbox_url}/_sandbox/faults", json={"latency_ms": 1000})
        send(ingest, "c1", "finished first")
        wait_until(
            lambda: httpx.get(f"{sandbox_url}/_sandbox/stats").json()["max_inflight"], timeout_s=10
        )
        conn = redis.Redis.from_url(redis_url)
        send_shutdown_command(conn, worker.name)
        assert proc.wait(20) == 0
        assert title(sandbox_url, "c1") == "finished first"
        assert conn.zcard("cb:inflight") == 0 and conn.exists("cb:p:a/c1") == 0
        assert rq_workers(redis_url) == []
        conn.close()
        assert b"Received shutdown command" in log.read_bytes()
    finally:
        stop([proc])


def test_a_burst_worker_exits_while_suspended_without_sending(
    tmp_path, env, ingest, sandbox_url, redis_url
):
    send(ingest, "c1", "left for later")
    rq("suspend", url=redis_url)
    try:
        proc = cli_logged("worker", "--burst", env=env, log=tmp_path / "w")
        assert proc.wait(30) == 0
        assert title(sandbox_url, "c1") is None
        assert b"suspended in burst mode" in (tmp_path / "w").read_bytes()
    finally:
        rq("resume", url=redis_url)


def test_an_idle_worker_exits_within_a_second_of_sigterm(
    redis_url: str, start_worker_process: Any
) -> None:
    """SIGTERM just after the worker began its blocking wait for RQ jobs: it used to sit out
    that whole wait (2 s) after logging 'worker stopped'."""
    import signal

    proc = start_worker_process()
    watcher = redis.Redis.from_url(redis_url, decode_responses=True)
    wait_until(lambda: watcher.keys("rq:worker:*"), timeout_s=30)
    deadline = time.monotonic() + 20
    with watcher.monitor() as monitor:  # the worker's commands, as Redis receives them
        for command in monitor.listen():
            words = command["command"].split()
            if words[0].upper() in ("BLMOVE", "BLPOP") and f"rq:queue:{RQ_QUEUE}" in words:
                break  # it has just begun waiting for an RQ job
            assert time.monotonic() < deadline, "the worker never waited for an RQ job"
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert time.monotonic() - started < 1.2  # its job poll is 0.5 s now
