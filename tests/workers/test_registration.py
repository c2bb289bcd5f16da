"""A worker's RQ registration survives Redis restarts and flushes: `rq info`, RQ's
Worker.all and `convo-bridge status` keep seeing it, and it is re-made with a log line.
Real worker processes, a real Redis server, RQ's own command line."""

import json
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
import redis
from rq.command import send_shutdown_command

from bridge.local.redis_server import RedisServer
from bridge.store.keys import RQ_QUEUE
from tests.conftest import wait_until, write_config
from tests.servers import cli_logged, rq, rq_workers, stop


def status_json(url, config, env):
    out = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "--config", str(config), "status", "--json"],
        capture_output=True,
        text=True,
        env={**env, "REDIS_URL": url},
        timeout=30,
        check=True,
    )
    return json.loads(out.stdout)


@pytest.fixture
def env(bridge_env):
    import os

    return {**os.environ, **bridge_env, "BRIDGE_LOG_FORMAT": "text"}


def test_registration_survives_a_redis_restart(tmp_path, env):
    server = RedisServer(tmp_path / "redis", appendfsync="always")
    server.start()
    config = write_config(tmp_path)
    proc = cli_logged(
        "--config", str(config), "worker", env={**env, "REDIS_URL": server.url}, log=tmp_path / "w"
    )
    try:
        [before] = wait_until(lambda: rq_workers(server.url), timeout_s=30)
        server.stop()
        time.sleep(16)  # longer than one of the old 15 s heartbeats: one of them fails
        server.start()
        restarted = datetime.now(UTC)
        [after] = wait_until(
            lambda: [w for w in rq_workers(server.url) if w.last_heartbeat > restarted],
            timeout_s=15,
        )
        assert after.name == before.name and after.get_state() == "idle"
        info = rq("info", "-W", url=server.url)
        assert f"{before.name} (" in info.stdout and "idle convo-bridge" in info.stdout
        assert "1 workers" in info.stdout
        assert status_json(server.url, config, env)["workers_alive"] == 1
        assert proc.poll() is None
        conn = redis.Redis.from_url(server.url)  # RQ's commands still reach it
        wait_until(lambda: conn.pubsub_numsub(f"rq:pubsub:{before.name}")[0][1], timeout_s=10)
        send_shutdown_command(conn, before.name)
        conn.close()
        assert proc.wait(20) == 0
    finally:
        stop([proc])
        server.stop()


def test_registration_is_made_again_after_a_flush_and_logged(tmp_path, env, redis_url):
    config = write_config(tmp_path)
    log_path = tmp_path / "worker.log"
    proc = cli_logged("--config", str(config), "worker", env=env, log=log_path)
    try:
        [before] = wait_until(lambda: rq_workers(redis_url), timeout_s=30)
        conn = redis.Redis.from_url(redis_url)
        conn.flushall()
        conn.close()
        [after] = wait_until(lambda: rq_workers(redis_url), timeout_s=10)
        assert after.name == before.name
        assert after.hostname and after.pid == proc.pid and after.queue_names() == [RQ_QUEUE]
        wait_until(lambda: b"registered with RQ again" in log_path.read_bytes(), timeout_s=5)
    finally:
        stop([proc])
    assert rq_workers(redis_url) == []  # a clean exit deregisters at once
