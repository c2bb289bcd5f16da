"""The delivery worker as RQ sees and drives it, through RQ's own command line: `rq worker
-w workers.DeliveryWorker` delivers, `rq info` shows its state and counts, `rq suspend` /
`rq resume` pause and resume delivery, RQ's shutdown command stops it cleanly."""

import subprocess
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


@pytest.mark.parametrize("patching", [False, True], ids=["idle", "patch_in_flight"])
def test_sigterm_with_a_half_open_redis_exits_within_the_lease_and_logs_only_json(
    tmp_path, bridge_env, redis_server, redis_url, sandbox_url, patching
):
    """Redis stops answering (a proxy in between stops forwarding, connections stay open)
    while the worker's RQ threads and loops use it, and maybe a PATCH is in flight (its
    settle then waits on Redis); SIGTERM ends the process within lease_s + 5 s, and every
    line it wrote, thread errors included, is JSON."""
    import json
    import signal

    from tests.servers import StallingProxy

    lease_s = 3
    config = write_config(tmp_path, f"lease_s = {lease_s}\n")
    with StallingProxy("127.0.0.1", redis_server.port) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        env = {**bridge_env, "REDIS_URL": url, "BRIDGE_CONFIG": str(config)}
        env["BRIDGE_LOG_FORMAT"] = "json"
        log = tmp_path / "w"
        proc = cli_logged("worker", env=env, log=log)
        try:
            wait_until(lambda: rq_workers(redis_url), timeout_s=30)
            if patching:
                httpx.post(f"{sandbox_url}/_sandbox/faults", json={"latency_ms": 1500})
                settings = load_settings(str(config), {**bridge_env, "BRIDGE_CONFIG": ""})
                with serve_app_in_thread(build_app(settings)) as ingest:
                    send(ingest, "c1", "in flight")
                stats = f"{sandbox_url}/_sandbox/stats"
                wait_until(lambda: httpx.get(stats).json()["max_inflight"], timeout_s=10)
            else:
                time.sleep(1.5)  # the loops and RQ's threads are using their connections
            proxy.stall()
            time.sleep(2.0)  # they are now blocked on it
            proc.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            try:
                proc.wait(lease_s + 5)
            except subprocess.TimeoutExpired:
                pytest.fail(f"still running {lease_s + 5} s after SIGTERM")
            took = time.monotonic() - sent
        finally:
            stop([proc], 5)
    assert took < lease_s + 5
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    for line in lines:
        json.loads(line)  # raises on a raw traceback line
    assert any(json.loads(line)["msg"] == "worker stopped" for line in lines)


def test_the_worker_overrides_and_uses_only_public_rq_names_of_the_pinned_rq() -> None:
    """DeliveryWorker overrides RQ's public hooks only (as rq's own worker classes do), with
    RQ's parameters, and the RQ names it reads exist: a new rq within the pinned range that
    renames one fails here, not in production."""
    import inspect
    import tomllib
    from importlib.metadata import version
    from pathlib import Path

    from packaging.requirements import Requirement
    from rq import SimpleWorker

    from workers.rq_worker import DeliveryWorker

    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    [pinned] = [Requirement(d) for d in project["dependencies"] if Requirement(d).name == "rq"]
    assert version("rq") in pinned.specifier
    assert "99.0" not in pinned.specifier  # an upper bound: a new major is tried first
    ours = {n for n in vars(DeliveryWorker) if not n.startswith("__")}
    overridden = ours & set(dir(SimpleWorker))
    assert overridden, "nothing overridden: the check below checks nothing"
    for name in overridden:
        assert not name.startswith("_"), f"{name} is private to rq"
        theirs, mine = getattr(SimpleWorker, name), vars(DeliveryWorker)[name]
        if callable(theirs) and callable(mine):  # RQ's parameters, or *args / **kwargs
            accepted = []
            for param in inspect.signature(mine).parameters.values():
                if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                    break
                accepted.append(param.name)
            params = list(inspect.signature(theirs).parameters)
            assert params[: len(accepted)] == accepted, name
    worker = DeliveryWorker(["q"], name="w", connection=redis.Redis(port=1), prepare_for_work=False)
    assert worker.queue_names() == ["q", RQ_QUEUE]
    for name in (
        "queue_class", "job_class", "serializer", "death_penalty_class", "execute_job",
        "pubsub_channel_name", "handle_payload", "key", "executions_key", "queues",
        "pubsub", "pubsub_thread", "connection",
    ):  # fmt: skip
        assert hasattr(worker, name), name
    kwargs = worker.connection.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == worker.connection_timeout < 60  # not RQ's 415 s


def test_rq_worker_command_in_json_format_writes_rqs_own_lines_as_json(tmp_path, env, redis_url):
    """`rq worker` gives RQ's loggers text handlers of their own before our worker starts;
    in `json` format RQ's lines about the jobs it runs are JSON records too."""
    import json

    from rq import Queue

    log = tmp_path / "w"
    proc = rq_worker(
        "-w",
        "workers.DeliveryWorker",
        RQ_QUEUE,
        url=redis_url,
        env={**env, "BRIDGE_LOG_FORMAT": "json"},
        log=log,
    )
    try:
        wait_until(lambda: rq_workers(redis_url), timeout_s=30)
        conn = redis.Redis.from_url(redis_url)
        job = Queue(RQ_QUEUE, connection=conn).enqueue(
            "bridge.store.rq_jobs.replay_dead_letters", kwargs={"ids": []}
        )
        wait_until(lambda: job.get_status(refresh=True) == "finished", timeout_s=15)
        conn.close()
    finally:
        stop([proc])
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert any(r["logger"] == "rq.worker" and "Job OK" in r["msg"] for r in records)


def test_an_idle_worker_exits_within_a_second_of_sigterm(
    redis_url: str, start_worker_process: Any
) -> None:
    """SIGTERM just after the worker looked for RQ jobs (it once sat out a whole blocking
    wait, 2 s, after logging 'worker stopped'; it now looks without blocking and sleeps
    between looks). It waits for neither that sleep, its own wake wait nor the RQ pubsub
    thread's read (~15 ms quiet; 1.5 s is room for a loaded machine)."""
    import signal

    proc = start_worker_process()
    watcher = redis.Redis.from_url(redis_url, decode_responses=True)
    wait_until(lambda: watcher.keys("rq:worker:*"), timeout_s=30)
    deadline = time.monotonic() + 20
    with watcher.monitor() as monitor:  # the worker's commands, as Redis receives them
        for command in monitor.listen():
            words = command["command"].split()
            if words[0].upper() in ("LMOVE", "LPOP") and f"rq:queue:{RQ_QUEUE}" in words:
                break  # it has just looked for an RQ job
            assert time.monotonic() < deadline, "the worker never waited for an RQ job"
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert time.monotonic() - started < 1.5
