"""`convo-bridge trace` and the admin conversation view answer "why did my conversation not
update?": applied values with the source, event id and times they came from, pending
changes, waiting, attempts, dead letters. Real Redis, sandbox, worker threads, CLI process."""

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import SECRET, convo, wait_until
from tests.signing import signed

T0 = int(time.time() * 1000) - 60_000


def send(url, title, event_id, at=T0, convo_id="c1"):
    payload = {"agent_id": "a", "convo_id": convo_id, "occurred_at": at, "set": {"title": title}}
    body, headers = signed(SECRET, payload, msg_id=event_id)
    answer = httpx.post(f"{url}/webhooks/demo", content=body, headers=headers)
    assert answer.status_code == 202, answer.text


@pytest.fixture
def trace_cli(bridge_env, settings):
    def run(*args):
        done = subprocess.run(
            [sys.executable, "-m", "bridge.cli", "trace", *args],
            capture_output=True,
            text=True,
            env={**os.environ, **bridge_env, "BRIDGE_CONFIG": settings.path},
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    return run


def test_trace_shows_where_the_applied_value_came_from_and_why_an_older_event_lost(
    start_worker, ingest_url, sandbox_url, trace_cli
):
    start_worker()
    send(ingest_url, "newest", "evt_new", at=T0 + 5000)
    wait_until(lambda: (convo(sandbox_url, "a", "c1") or {}).get("title") == "newest")
    send(ingest_url, "older", "evt_old", at=T0)  # arrives later, happened earlier: dropped
    time.sleep(0.5)
    found = json.loads(trace_cli("a", "c1", "--json"))
    [title] = [c for c in found["applied"] if c["name"] == "f:title"]
    assert title["value"] == "newest" and title["source"] == "demo"
    assert title["event_id"] == "evt_new" and title["occurred_at"] == T0 + 5000
    assert title["received_at"] > 0 and found["last_patch_at"] >= title["received_at"]
    assert found["pending"] == [] and not found["waiting"] and not found["in_doubt"]
    assert found["verdict"][0].startswith("up to date") and "newest wins" in found["verdict"][0]
    text = trace_cli("a", "c1")
    assert 'title = "newest"  from demo:evt_new' in text
    assert "convo-bridge events --convo a/c1" in text  # from the trace to its events


def test_trace_of_a_conversation_nobody_delivers_says_it_waits_and_why(
    ingest_url, trace_cli, redis_url
):
    send(ingest_url, "queued", "evt_q")
    found = json.loads(trace_cli("a", "c1", "--json"))
    [pending] = found["pending"]
    assert pending["name"] == "f:title" and pending["value"] == "queued"
    assert pending["event_id"] == "evt_q" and found["waiting"]
    assert any(line.startswith("waiting for a worker") for line in found["verdict"])
    assert "no worker is running: start `convo-bridge worker`" in found["verdict"]


def test_trace_lists_the_conversations_dead_letters_with_how_to_replay(
    start_worker, ingest_url, sandbox_url, trace_cli
):
    start_worker()
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"script": [422]})
    send(ingest_url, "refused", "evt_r")
    found = wait_until(
        lambda: (t := json.loads(trace_cli("a", "c1", "--json")))["dead_letters"] and t,
        timeout_s=15,
    )
    [letter] = found["dead_letters"]
    assert letter["reason"] == "rejected_422"
    assert f"convo-bridge dlq replay {letter['id']}" in found["verdict"][0]


def test_admin_conversation_view_and_api_show_the_trace(start_worker, ingest_url, sandbox_url):
    start_worker()
    send(ingest_url, "shown", "evt_shown")
    wait_until(lambda: (convo(sandbox_url, "a", "c1") or {}).get("title") == "shown")
    api = httpx.get(
        f"{ingest_url}/admin/conversations/a/c1", headers={"Authorization": "Bearer admin-token"}
    )
    assert api.status_code == 200 and api.json()["applied"][0]["event_id"] == "evt_shown"
    with httpx.Client(base_url=ingest_url) as browser:
        browser.post("/admin/login", data={"token": "admin-token"})
        page = browser.get("/admin/ui/conversation", params={"agent_id": "a", "convo_id": "c1"})
        assert page.status_code == 200
        assert "Applied values and where they came from" in page.text
        assert "evt_shown" in page.text and "up to date" in page.text
        bad = browser.get("/admin/ui/conversation", params={"agent_id": "a"})
        assert bad.status_code == 400 and "convo_id" in bad.text
        assert 'action="/admin/ui/conversation"' in browser.get("/admin/").text


INTERNAL = r"\b[fth]:[\w-]|\b1[0-9]{12}\b"  # change names as stored, epoch milliseconds


def test_trace_text_and_page_say_each_change_in_words_with_utc_times(ingest_url, trace_cli):
    import re

    payload = {
        "agent_id": "a",
        "convo_id": "c1",
        "occurred_at": T0,
        "tags": {"add": ["vip"], "remove": ["bot"]},
        "handoff": {"event": "requested", "team_key": "billing"},
    }
    body, headers = signed(SECRET, payload, msg_id="evt_words")
    assert httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=headers).is_success
    text = trace_cli("a", "c1")
    for said in ('state = "requested_chat"', 'tag "vip" added', 'tag "bot" removed'):
        assert f"  {said}  from demo:evt_words  occurred 20" in text, said
    assert "handoff requested team billing at 20" in text
    assert re.findall(INTERNAL, text) == [], text
    assert re.search(r"occurred \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", text)
    with httpx.Client(base_url=ingest_url) as browser:
        browser.post("/admin/login", data={"token": "admin-token"})
        page = browser.get("/admin/ui/conversation", params={"agent_id": "a", "convo_id": "c1"})
    main = page.text.split("<main>", 1)[1]
    assert "tag &quot;vip&quot; added" in main and "handoff requested" in main
    assert re.findall(INTERNAL, main) == [], main
