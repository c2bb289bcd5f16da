"""A sender's clock far ahead cannot freeze a field: an occurred_at later than receipt +
`[ingest] max_clock_skew_s` counts as the receipt time (Redis's clock), its own time is kept
for `trace`, counted per source and logged. Signed webhooks, real worker, sandbox."""

import logging
import time

import httpx
from prometheus_client import REGISTRY

from tests.conftest import SECRET, convo, wait_until
from tests.signing import signed

Y2099 = "2099-12-31T00:00:00Z"
Y2099_MS = 4_102_358_400_000
HEADERS = {"authorization": "Bearer admin-token"}


def send(url, convo_id="c1", **parts):
    payload = {"agent_id": "a1", "convo_id": convo_id, **parts}
    body, headers = signed(SECRET, payload)
    answer = httpx.post(f"{url}/webhooks/demo", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == 1


def now_ms():
    return int(time.time() * 1000)


def future_count():
    value = REGISTRY.get_sample_value("convo_bridge_future_events_total", {"source": "demo"})
    return value or 0.0


def applied(ingest_url, name, convo_id="c1"):
    shown = httpx.get(f"{ingest_url}/admin/conversations/a1/{convo_id}", headers=HEADERS).json()
    return {c["name"]: c for c in shown["applied"]}.get(name)


def test_a_future_dated_title_does_not_freeze_the_later_titles(
    ingest_url, sandbox_url, start_worker, caplog
):
    start_worker()
    counted = future_count()
    with caplog.at_level(logging.WARNING, logger="convo_bridge.ingest"):
        send(ingest_url, occurred_at=Y2099, set={"title": "from 2099"})
    wait_until(lambda: (c := convo(sandbox_url, "a1", "c1")) and c.get("title") == "from 2099")
    # trace shows the sender's time beside the receipt time it was counted as
    title = applied(ingest_url, "f:title")
    assert title["claimed_at"] == Y2099_MS
    assert title["occurred_at"] == title["received_at"]
    assert abs(title["received_at"] - now_ms()) < 60_000
    assert future_count() == counted + 1
    [line] = [r for r in caplog.records if "in the future" in r.getMessage()]
    assert line.fields["source"] == "demo" and line.fields["occurred_at"] == [Y2099_MS]
    for i in range(5):  # real events of the next moments
        send(ingest_url, occurred_at=now_ms(), set={"title": f"title {i}", "userName": f"u{i}"})
    data = wait_until(
        lambda: (c := convo(sandbox_url, "a1", "c1")) and c.get("userName") == "u4" and c
    )
    assert data["title"] == "title 4"
    assert applied(ingest_url, "f:title")["claimed_at"] is None


def test_a_future_dated_tag_list_and_state_do_not_freeze_later_ones(
    ingest_url, sandbox_url, start_worker
):
    start_worker()
    send(ingest_url, occurred_at=Y2099, set={"tags": ["old"]}, handoff={"event": "completed"})
    wait_until(lambda: (c := convo(sandbox_url, "a1", "c1")) and c.get("state") == "ended_chat")
    send(ingest_url, occurred_at=now_ms(), tags={"add": ["new"]}, handoff={"event": "requested"})
    data = wait_until(
        lambda: (c := convo(sandbox_url, "a1", "c1")) and c.get("state") == "requested_chat" and c
    )
    assert data["tags"] == ["old", "new"]
    # state and history agree: the newest entry is the open request
    assert "requestedAt" in data["handoffHistory"][-1]
    assert "completedAt" not in data["handoffHistory"][-1]
    # the 2099 step is dated when it was received, like its state
    times = [v for step in data["handoffHistory"] for k, v in step.items() if k.endswith("At")]
    assert times and all(t < Y2099_MS // 1000 for t in times)


def test_a_time_within_the_allowed_skew_is_believed(ingest_url, sandbox_url, start_worker):
    start_worker()
    ahead = now_ms() + 120_000  # two minutes fast: within the default 300 s
    send(ingest_url, occurred_at=ahead, set={"title": "fast clock"})
    wait_until(lambda: (c := convo(sandbox_url, "a1", "c1")) and c.get("title") == "fast clock")
    title = applied(ingest_url, "f:title")
    assert title["occurred_at"] == ahead and title["claimed_at"] is None
