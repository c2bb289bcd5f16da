"""Fencing: a worker sends only while it holds the conversation's lease with a whole request
of it left; a paused worker wakes up, finds its lease gone and sends nothing. Real worker
processes, SIGSTOP/SIGCONT and SIGTERM."""

import os
import signal
import time

import httpx
import pytest
import redis

from bridge.config import load_settings
from bridge.errors import ConfigError
from tests.conftest import SECRET, convo, wait_until, write_config
from tests.servers import cli
from tests.signing import signed

T0 = int(time.time() * 1000) - 60_000


def send(url, payload):
    body, headers = signed(SECRET, payload)
    assert httpx.post(f"{url}/webhooks/demo", content=body, headers=headers).status_code == 202


def title_patches(sandbox_url):
    return [
        p["body"]["conversation"].get("title")
        for p in httpx.get(f"{sandbox_url}/_sandbox/log").json()
        if p["status"] == 200 and "title" in p["body"]["conversation"]
    ]


def test_a_lease_shorter_than_a_request_is_refused_at_start_up(tmp_path, bridge_env):
    path = tmp_path / "c.toml"
    path.write_text("[delivery]\nlease_s = 3\nrequest_timeout_s = 30\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, bridge_env)
    assert err.value.key == "delivery.lease_s"


def test_a_worker_paused_past_its_lease_never_patches_after_waking(
    tmp_path, bridge_env, sandbox_url, ingest_url
):
    # the repro ran with request_timeout_s = 30, which start-up now refuses (above)
    config = write_config(tmp_path / "w", "request_timeout_s = 2\n")
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"get_latency_ms": 1500})
    r = redis.Redis.from_url(bridge_env["REDIS_URL"])
    a = cli("--config", str(config), "worker", env=bridge_env)
    b = None
    try:
        wait_until(lambda: r.exists("rq:workers"), timeout_s=15)  # a is up
        # a tag change needs the conversation's tags first: a GET, 1.5 s
        send(ingest_url, {"agent_id": "a", "convo_id": "c", "occurred_at": T0,
                          "set": {"title": "v1"}, "tags": {"add": ["x"]}})  # fmt: skip
        wait_until(lambda: r.zcard("cb:inflight") == 1, timeout_s=10)
        time.sleep(0.3)
        os.kill(a.pid, signal.SIGSTOP)  # paused while it reads the tags, before its PATCH
        b = cli("--config", str(config), "worker", env=bridge_env)
        wait_until(lambda: title_patches(sandbox_url) == ["v1"], timeout_s=30)
        send(ingest_url, {"agent_id": "a", "convo_id": "c", "occurred_at": T0 + 1,
                          "set": {"title": "v2"}})  # fmt: skip
        wait_until(lambda: (convo(sandbox_url, "a", "c") or {}).get("title") == "v2", timeout_s=15)
        os.kill(a.pid, signal.SIGCONT)  # a's GET answer is waiting for it
        time.sleep(4)
        assert title_patches(sandbox_url) == ["v1", "v2"]
        assert convo(sandbox_url, "a", "c")["title"] == "v2"
        assert httpx.get(f"{sandbox_url}/_sandbox/stats").json()["overlaps"] == 0
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.terminate()
                p.wait(30)
        r.close()


def test_sigterm_releases_leases_only_after_the_get_and_patch_really_ended(
    tmp_path, bridge_env, sandbox_url, ingest_url
):
    config = write_config(tmp_path / "w", "lease_s = 10\nrequest_timeout_s = 8\n")
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"latency_ms": 7000})  # GET 7 s + PATCH 7 s
    r = redis.Redis.from_url(bridge_env["REDIS_URL"])
    a = cli("--config", str(config), "worker", env=bridge_env)
    b = None
    try:
        wait_until(lambda: r.exists("rq:workers"), timeout_s=15)
        send(ingest_url, {"agent_id": "a", "convo_id": "c", "occurred_at": T0,
                          "set": {"title": "t"}, "tags": {"add": ["x"]}})  # fmt: skip
        wait_until(lambda: r.zcard("cb:inflight") == 1, timeout_s=10)
        a.send_signal(signal.SIGTERM)
        b = cli("--config", str(config), "worker", env=bridge_env)
        assert a.wait(40) == 0
        # whatever a handed back, b delivers (a GET and a PATCH, 14 s); until all settled:
        wait_until(lambda: not r.keys("cb:p:*") and r.zcard("cb:inflight") == 0, timeout_s=40)
        httpx.delete(f"{sandbox_url}/_sandbox/faults")
        stats = httpx.get(f"{sandbox_url}/_sandbox/stats").json()
        assert stats["overlaps"] == 0
        assert stats["patches"] == 1
        assert convo(sandbox_url, "a", "c")["title"] == "t"
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(30)
        r.close()


def test_a_conversation_taken_again_by_the_same_worker_keeps_its_lease_renewed(
    make_settings, ingest_url, sandbox_url, start_worker, rclient
):
    settings = make_settings("in_doubt_quiet_s = 0\n")  # lease_s = 3: renewed every second
    httpx.post(
        f"{sandbox_url}/_sandbox/faults", json={"script": [{"hold_s": 1.8}, {"hold_s": 1.9}]}
    )
    start_worker(settings)
    send(ingest_url, {"agent_id": "a", "convo_id": "c", "occurred_at": T0,
                      "set": {"title": "t"}, "tags": {"add": ["x"]}})  # fmt: skip
    wait_until(lambda: httpx.get(f"{sandbox_url}/_sandbox/stats").json()["max_inflight"] == 1)
    # its first lease expires mid-PATCH (as a long pause would) and the sweep hands the
    # conversation back: this same worker takes it again, and the second run is slow
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"get_latency_ms": 1900})
    rclient.delete("cb:lease:a/c")
    rclient.zrem("cb:inflight", "a/c")
    rclient.zadd("cb:due", {"a/c": 0})
    wait_until(lambda: rclient.exists("cb:lease:a/c"))
    second = rclient.get("cb:lease:a/c")
    wait_until(lambda: len(httpx.get(f"{sandbox_url}/_sandbox/log").json()) == 1)  # first ended
    assert rclient.get("cb:lease:a/c") == second  # the second run still holds it...
    before = rclient.pttl("cb:lease:a/c")
    time.sleep(1.5)
    assert rclient.get("cb:lease:a/c") == second
    assert rclient.pttl("cb:lease:a/c") > before - 1000  # ...and it is still being renewed
