"""A change the worker cannot send (queued by an older version, or any bug while preparing or
sending) counts as an attempt, ends as a `worker_error` dead letter after max_attempts, and
later changes to the conversation still go out."""

import asyncio
import time

import httpx

from bridge.changes import payloads
from bridge.intents import Intent
from bridge.store import Routed, Store, conversation_key
from tests.conftest import SECRET, convo, wait_until
from tests.signing import signed

T0 = int(time.time() * 1000) - 60_000


def deep(depth):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


def queue_directly(redis_url, intent, event_id):
    """What ingest refuses today but an older version accepted: straight into Redis."""

    async def go():
        store = Store(redis_url)
        try:
            pairs = payloads(intent, "ended_chat")
            ck = conversation_key(intent.agent_id, intent.convo_id)
            routed = Routed("demo", event_id, pairs, intent.occurred_at, ck=ck)
            await store.accept([routed], dedup_ttl_s=60, coalesce_ms=0)
        finally:
            await store.close()

    asyncio.run(go())


def test_an_unsendable_change_is_dead_lettered_and_later_changes_go_out(
    make_settings, redis_url, sandbox_url, ingest_url, start_worker
):
    settings = make_settings("max_attempts = 3\n")
    queue_directly(redis_url, Intent(T0, "a1", "c1", set={"origin": deep(253)}), "poison")
    start_worker(settings)
    headers = {"authorization": "Bearer admin-token"}
    letters = wait_until(
        lambda: httpx.get(f"{ingest_url}/admin/dlq", headers=headers).json(), timeout_s=15
    )
    assert [dl["reason"] for dl in letters] == ["worker_error"]
    shown = httpx.get(f"{ingest_url}/admin/dlq/{letters[0]['id']}", headers=headers).json()
    assert len(shown["attempt_log"]) == 3
    assert all(a["status"] == "worker_error" for a in shown["attempt_log"])
    assert shown["events"][0]["event_id"] == "poison"

    body, sig = signed(
        SECRET,
        {"agent_id": "a1", "convo_id": "c1", "occurred_at": T0 + 1, "set": {"title": "after"}},
    )
    assert httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=sig).status_code == 202
    wait_until(lambda: (convo(sandbox_url, "a1", "c1") or {}).get("title") == "after")
