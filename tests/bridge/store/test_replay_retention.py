"""A dead letter replayed long after its conversation's last PATCH still loses to the newer
values applied meanwhile: what a replay needs is kept while the conversation has dead letters."""

import time

import httpx

from tests.conftest import SECRET, convo, wait_until
from tests.signing import signed

T0 = int(time.time() * 1000) - 60_000
ADMIN = {"authorization": "Bearer admin-token"}
DAYS_30_MS = 30 * 86_400_000


def send(url, at, title):
    payload = {"agent_id": "a", "convo_id": "c", "occurred_at": at, "set": {"title": title}}
    body, headers = signed(SECRET, payload)
    assert httpx.post(f"{url}/webhooks/demo", content=body, headers=headers).status_code == 202


def thirty_days_pass(r):
    """Every key that expires within 30 days expires now."""
    for key in r.scan_iter("cb:*"):
        ttl = r.pttl(key)
        if 0 < ttl <= DAYS_30_MS:
            r.pexpire(key, 1)
    time.sleep(0.05)


def test_a_replay_after_thirty_quiet_days_does_not_overwrite_a_newer_value(
    ingest_url, sandbox_url, start_worker, rclient
):
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"script": [400]})
    start_worker()
    send(ingest_url, T0, "old")
    [letter] = wait_until(lambda: httpx.get(f"{ingest_url}/admin/dlq", headers=ADMIN).json())
    send(ingest_url, T0 + 1000, "new")
    wait_until(lambda: (convo(sandbox_url, "a", "c") or {}).get("title") == "new")
    thirty_days_pass(rclient)
    answer = httpx.post(f"{ingest_url}/admin/dlq/{letter['id']}/replay", headers=ADMIN)
    assert answer.status_code == 200
    time.sleep(1.0)
    assert convo(sandbox_url, "a", "c")["title"] == "new"
    assert rclient.pttl("cb:hw:a/c") > 0  # no dead letter left: it expires again
