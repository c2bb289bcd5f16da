"""A 2xx whose body says "success": false is not a success (it is retried or dead-lettered)."""

import time

import httpx

from tests.conftest import SECRET, convo, wait_until
from tests.signing import signed

T0 = int(time.time() * 1000) - 60_000
ADMIN = {"authorization": "Bearer admin-token"}


def send(url, payload):
    body, headers = signed(SECRET, payload)
    assert httpx.post(f"{url}/webhooks/demo", content=body, headers=headers).status_code == 202


def test_a_declined_200_is_dead_lettered_with_its_answer(ingest_url, sandbox_url, start_worker):
    script = [{"success": False, "code": "VALIDATION_FAILED"}]
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"script": script})
    start_worker()
    send(ingest_url, {"agent_id": "a1", "convo_id": "c1", "occurred_at": T0, "set": {"title": "x"}})
    letters = wait_until(lambda: httpx.get(f"{ingest_url}/admin/dlq", headers=ADMIN).json())
    assert letters[0]["reason"] == "declined"
    assert letters[0]["last_status"] == "200"
    assert "VALIDATION_FAILED" in letters[0]["last_answer"]
    assert "title" not in (convo(sandbox_url, "a1", "c1") or {})


def test_a_declined_200_saying_try_later_is_retried(ingest_url, sandbox_url, start_worker):
    script = [{"success": False, "code": "RATE_LIMITED"}]
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"script": script})
    start_worker()
    send(ingest_url, {"agent_id": "a1", "convo_id": "c1", "occurred_at": T0, "set": {"title": "y"}})
    wait_until(lambda: (convo(sandbox_url, "a1", "c1") or {}).get("title") == "y")
    log = httpx.get(f"{sandbox_url}/_sandbox/log").json()
    assert [p["status"] for p in log] == [200, 200]
    assert httpx.get(f"{ingest_url}/admin/dlq", headers=ADMIN).json() == []
