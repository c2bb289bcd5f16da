"""Crashes: a worker killed with kill -9 mid-PATCH, and Redis killed with kill -9 and
restarted from its append-only file. Real processes throughout."""

import os
import signal
import time

import httpx
import pytest

from bridge.app import build_app
from bridge.config import load_settings
from bridge.local.redis_server import RedisServer
from tests.conftest import SECRET, convo, wait_until, write_config
from tests.servers import cli, serve_app_in_thread
from tests.signing import signed

T0 = int(time.time() * 1000) - 60_000


def worker_process(config, env):
    return cli("--config", str(config), "worker", env=env)


def send(url, payload, expect=202):
    body, headers = signed(SECRET, payload)
    answer = httpx.post(f"{url}/webhooks/demo", content=body, headers=headers)
    assert answer.status_code == expect, answer.text
    return answer


@pytest.fixture
def env(bridge_env):
    return {**bridge_env, "BRIDGE_LOG_FORMAT": "text"}


def test_work_of_a_worker_killed_mid_patch_is_retried_by_another(tmp_path, env, sandbox_url):
    config = write_config(tmp_path)  # lease_s = 3
    settings = load_settings(config, env)
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"latency_ms": 4000})
    first = worker_process(config, env)
    try:
        with serve_app_in_thread(build_app(settings)) as url:
            send(
                url,
                {"agent_id": "a", "convo_id": "c", "occurred_at": T0, "set": {"title": "survives"}},
            )
            wait_until(
                lambda: httpx.get(f"{sandbox_url}/_sandbox/stats").json()["max_inflight"],
                timeout_s=15,
            )
            os.kill(first.pid, signal.SIGKILL)  # mid-PATCH
            first.wait()
            killed_at = time.time()
            httpx.post(f"{sandbox_url}/_sandbox/faults", json={"latency_ms": 0})
            httpx.delete(f"{sandbox_url}/_sandbox/log?all=1")
            second = worker_process(config, env)
            try:
                wait_until(
                    lambda: (convo(sandbox_url, "a", "c") or {}).get("title") == "survives",
                    timeout_s=60,
                )
            finally:
                second.terminate()
                second.wait(30)
            assert time.time() - killed_at < 60
    finally:
        if first.poll() is None:
            first.kill()


def test_acknowledged_intents_survive_a_redis_kill_and_restart(tmp_path, sandbox_url):
    server = RedisServer(tmp_path / "redis", appendfsync="always")
    server.start()
    env = {
        "DEMO_SECRET": SECRET,
        "REDIS_URL": server.url,
        "CONVOCORE_BASE_URL": sandbox_url,
        "CONVOCORE_API_TOKEN": "t",
    }
    config = write_config(tmp_path)
    settings = load_settings(config, env)
    worker = None
    try:
        with serve_app_in_thread(build_app(settings)) as url:
            for i in range(20):
                send(
                    url,
                    {
                        "agent_id": "a",
                        "convo_id": f"c{i}",
                        "occurred_at": T0,
                        "set": {"messagesNum": i},
                    },
                )
            server.kill()  # kill -9 before any worker ran: everything is only in the AOF
            down = {"agent_id": "a", "convo_id": "x", "occurred_at": T0, "set": {"title": "t"}}
            send(url, down, expect=503)  # a change to queue (one with none is ignored, 202)
            assert httpx.get(f"{url}/readyz").status_code == 503
            worker = worker_process(config, env)  # starts while Redis is down
            time.sleep(1)
            server.start()
            wait_until(lambda: httpx.get(f"{url}/readyz").status_code == 200)
            send(
                url,
                {"agent_id": "a", "convo_id": "c20", "occurred_at": T0, "set": {"messagesNum": 20}},
            )
        for i in range(21):
            wait_until(
                lambda i=i: (convo(sandbox_url, "a", f"c{i}") or {}).get("messagesNum") == i,
                timeout_s=30,
            )
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        server.stop()


def test_sigterm_lets_the_worker_finish_its_patch(tmp_path, env, sandbox_url):
    config = write_config(tmp_path)
    settings = load_settings(config, env)
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"latency_ms": 1500})
    worker = worker_process(config, env)
    with serve_app_in_thread(build_app(settings)) as url:
        send(url, {"agent_id": "a", "convo_id": "c", "occurred_at": T0, "set": {"title": "t"}})
        wait_until(
            lambda: httpx.get(f"{sandbox_url}/_sandbox/stats").json()["max_inflight"], timeout_s=15
        )
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    [patch] = httpx.get(f"{sandbox_url}/_sandbox/log").json()
    assert patch["status"] == 200
    assert settings  # the conversation was settled, not left held:
    import redis

    client = redis.Redis.from_url(env["REDIS_URL"])
    assert client.zcard("cb:inflight") == 0 and client.exists("cb:p:a/c") == 0
    client.close()
