"""Losing the Redis primary: kill -9 under a steady load, and a split brain, on a real
primary + replica + 3 sentinels (tests/ha.py). Ingest and a worker run on the Sentinel URL
with [redis] durability = "replica"; a sender retries what is not acknowledged."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from bridge.app import build_app
from bridge.config import Settings, load_settings
from tests.conftest import SECRET, WorkerThread, convo, wait_until, write_config
from tests.servers import serve_app_in_thread
from tests.signing import signed

T0 = int(time.time() * 1000) - 60_000
SHARED = 4  # conversations every request also updates: their last value must win


def ha_settings(tmp_path: Path, redis_url: str, sandbox_url: str, durability: str) -> Settings:
    path = write_config(tmp_path)
    path.write_text(path.read_text() + f'[redis]\ndurability = "{durability}"\n')
    env = {
        "DEMO_SECRET": SECRET,
        "REDIS_URL": redis_url,
        "CONVOCORE_BASE_URL": sandbox_url,
        "CONVOCORE_API_TOKEN": "test-token",
    }
    return load_settings(path, env)


class Sender(threading.Thread):
    """Posts request i (its own conversation u-i, and shared conversation s-(i % SHARED))
    until it is acknowledged, as a webhook sender retries; records what was acknowledged."""

    def __init__(self, url: str, retry: bool = True) -> None:
        super().__init__(daemon=True)
        self.url, self.retry = url, retry
        self.acked: list[int] = []
        self.refused = 0
        self.stopping = threading.Event()
        self.client = httpx.Client(timeout=10)

    def payload(self, i: int) -> list[dict[str, Any]]:
        return [
            {
                "agent_id": "a",
                "convo_id": f"u-{i}",
                "occurred_at": T0 + i,
                "set": {"title": f"v{i}"},
            },
            {
                "agent_id": "a",
                "convo_id": f"s-{i % SHARED}",
                "occurred_at": T0 + i,
                "set": {"title": f"v{i}"},
            },
        ]

    def run(self) -> None:
        i = 0
        while not self.stopping.is_set():
            body, headers = signed(SECRET, self.payload(i), msg_id=f"msg-{i}")
            try:
                status = self.client.post(
                    f"{self.url}/webhooks/demo", content=body, headers=headers
                ).status_code
            except httpx.HTTPError:
                status = 0
            if status == 202:
                self.acked.append(i)
            else:
                self.refused += 1
                if self.retry:
                    time.sleep(0.05)
                    continue  # the same request again
            i += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
        self.client.close()


def delivered(sandbox_url: str) -> dict[str, Any]:
    convos = httpx.get(f"{sandbox_url}/_sandbox/convos").json()
    items = convos if isinstance(convos, list) else convos.get("data", convos)
    out: dict[str, Any] = {}
    for c in items:
        out[c.get("convo") or c.get("convoId") or c.get("id")] = c
    return out


def missing(sandbox_url: str, acked: list[int]) -> list[int]:
    return [i for i in acked if (convo(sandbox_url, "a", f"u-{i}") or {}).get("title") != f"v{i}"]


def stale(sandbox_url: str, acked: list[int]) -> list[str]:
    out = []
    for k in range(SHARED):
        last = max((i for i in acked if i % SHARED == k), default=None)
        if last is not None:
            got = (convo(sandbox_url, "a", f"s-{k}") or {}).get("title")
            if got != f"v{last}":
                out.append(f"s-{k}: {got} != v{last}")
    return out


def test_killing_the_primary_under_load_loses_nothing_acknowledged(ha, tmp_path, sandbox_url):
    settings = ha_settings(tmp_path, ha.sentinel_url, sandbox_url, "replica")
    old = ha.primary_index()
    worker = WorkerThread(settings).start()
    try:
        with serve_app_in_thread(build_app(settings)) as url:
            sender = Sender(url)
            sender.start()
            wait_until(lambda: len(sender.acked) >= 30, timeout_s=20)
            ha.kill(old)
            promoted_at = ha.wait_promoted(old)
            before = len(sender.acked)
            wait_until(lambda: len(sender.acked) >= before + 30, timeout_s=20)
            sender.stop()
        acked = sender.acked
        wait_until(lambda: not missing(sandbox_url, acked[-5:]), timeout_s=30)
        wait_until(lambda: not missing(sandbox_url, acked), timeout_s=30, every_s=0.5)
        assert stale(sandbox_url, acked) == []
        stats = httpx.get(f"{sandbox_url}/_sandbox/stats").json()
        assert stats["overlaps"] == 0
        log = httpx.get(f"{sandbox_url}/_sandbox/log").json()
        records = log if isinstance(log, list) else log.get("log", [])
        after = [r["received_at"] for r in records if r["received_at"] > promoted_at]
        assert after and min(after) - promoted_at < 10, "delivery resumed late"
        print(
            f"\nkill -9 primary: {len(acked)} acknowledged, {sender.refused} refused "
            f"(retried), 0 lost; first PATCH {min(after) - promoted_at:.2f} s after promotion"
        )
    finally:
        worker.stop()
        ha.restore(old)


def split_brain(ha: Any, tmp_path: Path, durability: str, after_s: float = 1.0) -> tuple[int, int]:
    """Ingest pinned to the primary by a direct URL (as a client that never re-asks the
    sentinels); the primary is cut off from its replicas and the sentinels, which promote
    a replica, while ingest keeps writing to the old primary for `after_s`. Returns
    (acknowledged, acknowledged but missing from the promoted primary)."""
    old = ha.primary_index()
    settings = ha_settings(tmp_path, ha.url_of(old), "http://127.0.0.1:9", durability)
    try:
        with serve_app_in_thread(build_app(settings)) as url:
            sender = Sender(url, retry=False)
            sender.start()
            wait_until(lambda: len(sender.acked) >= 20, timeout_s=20)
            ha.proxies[old].cut()
            ha.wait_promoted(old)
            time.sleep(after_s)
            sender.stop()
        new = ha.primary_index()
        conn = redis.Redis(port=ha.ports[new])
        try:
            with conn.pipeline(transaction=False) as pipe:
                for i in sender.acked:
                    pipe.exists(f"cb:seen:demo:msg-{i}:0")  # its first event
                found = pipe.execute()
        finally:
            conn.close()
        print(
            f"\nsplit brain, durability {durability}: {len(sender.acked)} acknowledged, {found.count(0)} lost"
        )
        return len(sender.acked), found.count(0)
    finally:  # the old primary comes back as a replica of the new one, its writes dropped
        ha.kill(old)
        ha.restore(old)


def test_a_split_brain_loses_nothing_acknowledged_with_replica_durability(ha, tmp_path):
    acked, lost = split_brain(ha, tmp_path, "replica")
    assert acked >= 20
    assert lost == 0
