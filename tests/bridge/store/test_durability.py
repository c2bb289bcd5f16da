"""[redis] durability = "replica" on a real primary + replica (valkey-server, appendfsync
always): a 202 only once the replica holds the write; a replica that does not answer
means 503 with Retry-After, and the sender's retry is not a 202 'duplicate' before the
write it repeats is on the replica."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import redis

from bridge.app import build_app
from bridge.config import RedisSettings, load_settings
from bridge.errors import NotReplicated
from bridge.store import Outcome, Store
from tests.conftest import SECRET, write_config
from tests.servers import serve_app_in_thread
from tests.signing import signed

REPLICA = RedisSettings(durability="replica", replicas=1, replica_timeout_ms=300)


def _settings(tmp_path: Path, url: str, durability: str, sandbox_url: str = "http://x"):
    path = write_config(tmp_path)
    path.write_text(
        path.read_text() + f'[redis]\ndurability = "{durability}"\nreplica_timeout_ms = 300\n'
    )
    env = {"DEMO_SECRET": SECRET, "REDIS_URL": url, "CONVOCORE_BASE_URL": sandbox_url}
    return load_settings(path, env)


def _post(url: str, msg_id: str, convo: str = "c-1") -> httpx.Response:
    payload = {
        "type": "conversation.update",
        "agent_id": "a-1",
        "convo_id": convo,
        "occurred_at": 1_764_000_000_000,
        "set": {"title": "t"},
    }
    body, headers = signed(SECRET, payload, msg_id=msg_id)
    return httpx.post(f"{url}/webhooks/demo", content=body, headers=headers, timeout=10)


def _on_replica(ha, msg_id: str) -> bool:
    """Whether some replica holds the event (replicas = 1)."""
    for replica in ha.replicas():
        conn = redis.Redis(port=ha.ports[replica])
        try:
            if conn.exists(f"cb:seen:demo:{msg_id}"):
                return True
        finally:
            conn.close()
    return False


def _resume(ha, nodes: list[int]) -> None:
    for i in nodes:
        ha.resume_node(i)


def test_a_202_means_the_replica_holds_the_event(ha, tmp_path):
    settings = _settings(tmp_path, ha.sentinel_url, "replica")
    with serve_app_in_thread(build_app(settings)) as url:
        for i in range(20):
            assert _post(url, f"m{i}").status_code == 202
            assert _on_replica(ha, f"m{i}")  # read at once: WAIT came before the 202


def test_an_unacknowledged_write_is_503_and_its_retry_no_duplicate_202(ha, tmp_path):
    settings = _settings(tmp_path, ha.sentinel_url, "replica")
    with serve_app_in_thread(build_app(settings)) as url:
        stopped = ha.stop_replicas()
        try:
            first = _post(url, "m1")
            assert first.status_code == 503
            assert first.headers["retry-after"]
            assert first.json()["error"] == "unavailable"
            # the primary ran the script (the dedup key is set there), yet the retry must
            # not be acknowledged as a duplicate while the replica lacks the event
            assert _post(url, "m1").status_code == 503
        finally:
            _resume(ha, stopped)
        again = _post(url, "m1")
        assert again.status_code == 202
        assert again.json()["accepted"] + again.json()["duplicates"] == 1
        assert _on_replica(ha, "m1")


def test_local_durability_acknowledges_without_the_replica(ha, tmp_path):
    settings = _settings(tmp_path, ha.sentinel_url, "local")
    with serve_app_in_thread(build_app(settings)) as url:
        stopped = ha.stop_replicas()
        try:
            assert _post(url, "m1").status_code == 202
        finally:
            _resume(ha, stopped)


def test_a_workers_settle_and_an_admin_link_wait_for_the_replica_too(ha, tmp_path):
    settings = _settings(tmp_path, ha.sentinel_url, "replica")
    with serve_app_in_thread(build_app(settings)) as url:
        assert _post(url, "m1").status_code == 202

    async def run() -> None:
        store = Store(ha.sentinel_url, durability=REPLICA)
        try:
            [work], _ = await store.take(1, lease_ms=5000, rate_limit=0.0)
            stopped = ha.stop_replicas()
            try:
                with pytest.raises(NotReplicated):
                    await store.settle(
                        work, Outcome("ok", sent=work.entries), settings=settings.delivery
                    )
                with pytest.raises(NotReplicated):
                    await store.link("demo", "ext-1", "a-1", "c-1", coalesce_ms=0)
            finally:
                _resume(ha, stopped)
            await store.link("demo", "ext-2", "a-1", "c-1", coalesce_ms=0)
        finally:
            await store.close()

    asyncio.run(run())


def test_an_unlink_and_a_queued_replay_wait_for_the_replica_too(ha):
    from bridge.store.connect import sync_client
    from bridge.store.rq_jobs import enqueue_replay

    async def unlink() -> None:
        store = Store(ha.sentinel_url, durability=REPLICA)
        try:
            await store.link("demo", "ext-1", "a-1", "c-1", coalesce_ms=0)
            stopped = ha.stop_replicas()
            try:
                with pytest.raises(NotReplicated):
                    await store.delete_link("demo", "ext-1")
            finally:
                _resume(ha, stopped)
        finally:
            await store.close()

    asyncio.run(unlink())
    conn = sync_client(ha.sentinel_url)
    try:
        enqueue_replay(conn, ["1"], 0, "a test", REPLICA)  # the replicas answer: fine
        stopped = ha.stop_replicas()
        try:
            with pytest.raises(NotReplicated):
                enqueue_replay(conn, ["1"], 0, "a test", REPLICA)
        finally:
            _resume(ha, stopped)
    finally:
        conn.close()


def test_config_check_warns_when_fewer_replicas_are_connected_than_asked(ha, tmp_path):
    import os
    import subprocess
    import sys

    path = write_config(tmp_path)
    path.write_text(path.read_text() + '[redis]\ndurability = "replica"\nreplicas = 3\n')
    done = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "--config", str(path), "config", "check", "--for",
         "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "REDIS_URL": ha.sentinel_url, "DEMO_SECRET": SECRET},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 replica(s) connected" in done.stderr and "needs 3" in done.stderr


def test_scripts_are_loaded_again_after_noscript_as_on_a_promoted_replica(ha):
    async def run() -> None:
        store = Store(ha.sentinel_url, durability=REPLICA)
        try:
            await store.link("demo", "ext-1", "a-1", "c-1", coalesce_ms=0)
            conn = redis.Redis(port=ha.ports[ha.primary_index()])
            conn.script_flush()  # what a newly promoted primary's empty script cache looks like
            conn.close()
            assert await store.link("demo", "ext-2", "a-1", "c-2", coalesce_ms=0) == "linked"
        finally:
            await store.close()

    asyncio.run(run())
