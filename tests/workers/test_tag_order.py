"""Tags in occurred_at order, whatever the arrival order, across whole lists (set.tags) and
single operations (tags.add / tags.remove)."""

import time

import httpx

from tests.conftest import SECRET, convo, wait_until
from tests.signing import signed

T0 = int(time.time() * 1000) - 60_000


def send(url, at, **parts):
    payload = {"agent_id": "a", "convo_id": "c", "occurred_at": at, **parts}
    body, headers = signed(SECRET, payload)
    assert httpx.post(f"{url}/webhooks/demo", content=body, headers=headers).status_code == 202


def patches(url):
    return len(httpx.get(f"{url}/_sandbox/log").json())


def test_an_add_older_than_an_applied_whole_list_is_gone(ingest_url, sandbox_url, start_worker):
    start_worker()
    send(ingest_url, T0 + 2000, set={"tags": ["a"]})
    wait_until(lambda: (convo(sandbox_url, "a", "c") or {}).get("tags") == ["a"])
    send(ingest_url, T0 + 1000, tags={"add": ["x"]})
    send(ingest_url, T0 + 3000, set={"title": "later"})  # something newer still goes out
    wait_until(lambda: (convo(sandbox_url, "a", "c") or {}).get("title") == "later")
    time.sleep(0.3)
    assert convo(sandbox_url, "a", "c")["tags"] == ["a"]


def test_an_add_newer_than_a_late_whole_list_stays_on_top_of_it(
    ingest_url, sandbox_url, start_worker
):
    start_worker()
    send(ingest_url, T0 + 2000, tags={"add": ["x"]})
    wait_until(lambda: (convo(sandbox_url, "a", "c") or {}).get("tags") == ["x"])
    send(ingest_url, T0 + 1000, set={"tags": ["a"]})
    wait_until(lambda: patches(sandbox_url) == 2)
    time.sleep(0.3)
    assert convo(sandbox_url, "a", "c")["tags"] == ["a", "x"]


def test_a_remove_newer_than_a_late_whole_list_removes_from_it(
    ingest_url, sandbox_url, start_worker
):
    start_worker()
    send(ingest_url, T0 + 2000, tags={"remove": ["b"]})
    send(ingest_url, T0 + 2500, tags={"add": ["y"]})
    wait_until(lambda: (convo(sandbox_url, "a", "c") or {}).get("tags") == ["y"])
    send(ingest_url, T0 + 1000, set={"tags": ["a", "b"]})
    wait_until(lambda: patches(sandbox_url) == 2)
    time.sleep(0.3)
    assert convo(sandbox_url, "a", "c")["tags"] == ["a", "y"]
