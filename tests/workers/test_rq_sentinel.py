"""RQ's own tools on the Sentinel URL: `rq worker -w workers.DeliveryWorker` and `rq info`
with RQ's `-c` settings (SENTINEL) or `--connection-class bridge.store.connect.Redis -u
redis+sentinel://…`, and rq-dashboard with the URL; real processes, real sentinels."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bridge.app import build_app
from bridge.store.keys import RQ_QUEUE
from tests.conftest import SECRET, convo, wait_until, write_config
from tests.ha import SERVICE
from tests.servers import free_port, logged, serve_app_in_thread, spawn, stop
from tests.signing import signed
from tests.workers.test_failover import ha_settings

ROOT = Path(__file__).resolve().parents[2]


def rq(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rq.cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**env, "NO_COLOR": "1"},
    )


def test_rq_worker_info_and_dashboard_follow_the_sentinels(ha, tmp_path, sandbox_url):
    (tmp_path / "rqsettings.py").write_text(
        f"SENTINEL = {{'INSTANCES': {[('127.0.0.1', s.port) for s in ha.sentinels]!r}, "
        f"'MASTER_NAME': {SERVICE!r}, 'DB': 0}}\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
        "BRIDGE_CONFIG": str(write_config(tmp_path / "cfg")),
        "REDIS_URL": ha.sentinel_url,
        "DEMO_SECRET": SECRET,
        "CONVOCORE_BASE_URL": sandbox_url,
        "CONVOCORE_API_TOKEN": "test-token",
    }
    worker = logged(
        [sys.executable, "-m", "rq.cli", "worker", "-w", "workers.DeliveryWorker", "-c",
         "rqsettings", RQ_QUEUE],
        env,
        tmp_path / "worker.log",
    )  # fmt: skip
    dashboard_port = free_port()
    dashboard = spawn(
        [sys.executable, "-m", "rq_dashboard", "--redis-url", ha.sentinel_url, "-b",
         "127.0.0.1", "-p", str(dashboard_port)],
        {},
    )  # fmt: skip
    try:
        by_settings = wait_until(
            lambda: (
                "idle convo-bridge" in (out := rq("info", "-W", "-c", "rqsettings", env=env).stdout)
                and out
            ),
            timeout_s=30,
        )
        assert "1 workers" in by_settings
        by_url = rq(
            "info", "-W", "--connection-class", "bridge.store.connect.Redis",
            "-u", ha.sentinel_url, env=env,
        )  # fmt: skip
        assert by_url.returncode == 0 and "1 workers" in by_url.stdout, by_url.stderr

        settings = ha_settings(tmp_path / "ingest", ha.sentinel_url, sandbox_url, "replica")
        with serve_app_in_thread(build_app(settings)) as url:
            payload = {
                "agent_id": "a",
                "convo_id": "c",
                "occurred_at": int(time.time() * 1000),
                "set": {"title": "t"},
            }
            body, headers = signed(SECRET, payload)
            answer = httpx.post(f"{url}/webhooks/demo", content=body, headers=headers)
            assert answer.status_code == 202
        wait_until(lambda: (convo(sandbox_url, "a", "c") or {}).get("title") == "t", timeout_s=15)

        def workers() -> list[dict[str, str]] | None:
            try:
                base = f"http://127.0.0.1:{dashboard_port}/0/data"
                return list(httpx.get(f"{base}/workers.json").json()["workers"])
            except (httpx.HTTPError, ValueError, KeyError):
                return None

        [listed] = wait_until(workers, timeout_s=30)
        assert listed["queues"] == [RQ_QUEUE]
    finally:
        stop([worker, dashboard])
    assert b"Traceback" not in (tmp_path / "worker.log").read_bytes()


def test_the_worker_reads_a_sentinel_connection_back_as_its_sentinel_url():
    """`rq worker -c SETTINGS` hands DeliveryWorker a Sentinel-managed connection; the
    engine's own clients must go to the same sentinels and service (not localhost:6379)."""
    from redis.sentinel import Sentinel

    from workers.rq_worker import redis_url_of

    sentinel = Sentinel(
        [("127.0.0.1", 26001), ("127.0.0.1", 26002)], sentinel_kwargs={"password": "sp"}
    )
    conn = sentinel.master_for("svc", db=3, password="pw")
    url = redis_url_of(conn, "redis://127.0.0.1:6379/0")
    assert url == "redis+sentinel://:pw@127.0.0.1:26001,127.0.0.1:26002/svc/3?sentinel_password=sp"
    same = "redis+sentinel://:pw@127.0.0.1:26001/svc/3"
    assert redis_url_of(conn, same) == same
