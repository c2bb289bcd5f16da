"""Delivery control from the page: pause and resume (seen by status, /admin/status, the page
and /metrics), dead letters filtered with bulk replay and purge, a link set inline on an
unroutable row (it replays), a page per dead letter whose failed-again replay points back
to it, and retry-now for a scheduled retry."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
from selenium import webdriver
from selenium.webdriver.common.by import By

from bridge.admin.auth import csrf_token
from tests.bridge.admin.conftest import ADMIN, shot, sign_in, text_after
from tests.conftest import SECRET, convo, wait_until, write_config
from tests.signing import signed

T0 = 1_764_000_000_000
AUTH = {"Authorization": f"Bearer {ADMIN}"}
CSRF = csrf_token(ADMIN)


def send(url: str, msg_id: str, **ids: str) -> None:
    body, headers = signed(
        SECRET,
        {**ids, "occurred_at": T0, "set": {"title": f"from {msg_id}"}},
        msg_id=msg_id,
    )
    assert httpx.post(f"{url}/webhooks/demo", content=body, headers=headers).status_code == 202


def page_client(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url)
    assert client.post("/admin/login", data={"token": ADMIN}).status_code == 303
    return client


def test_pause_and_resume_are_shown_everywhere(ingest_url, tmp_path, bridge_env) -> None:
    client = page_client(ingest_url)
    assert client.post("/admin/ui/pause", data={"csrf": "0" * 64}).status_code == 403
    assert client.post("/admin/ui/pause", data={"csrf": CSRF}).status_code == 303
    assert httpx.get(f"{ingest_url}/admin/status", headers=AUTH).json()["delivery_paused"] is True
    page = client.get("/admin/").text
    assert 'id="paused"' in page and 'id="resume"' in page
    metrics = httpx.get(f"{ingest_url}/metrics").text
    assert re.search(r'^convo_bridge_delivery_paused\{scope="cluster"\} 1\.0$', metrics, re.M)
    config = str(write_config(tmp_path / "cli"))
    status = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "--config", config, "status"],
        capture_output=True,
        text=True,
        env=bridge_env,
        timeout=60,
    ).stdout
    assert "PAUSED" in status
    assert client.post("/admin/ui/resume", data={"csrf": CSRF}).status_code == 303
    assert httpx.get(f"{ingest_url}/admin/status", headers=AUTH).json()["delivery_paused"] is False
    assert 'id="paused"' not in client.get("/admin/").text
    client.close()


def test_dead_letters_are_filtered_and_replayed_or_purged_by_filter(ingest_url) -> None:
    send(ingest_url, "u1", external_id="T-1")
    send(ingest_url, "u2", external_id="T-2")
    client = page_client(ingest_url)
    shown = client.get("/admin/", params={"reason": "unroutable"}).text
    assert "Replay these 2" in shown
    assert "Purge these 0" in client.get("/admin/", params={"reason": "max_attempts"}).text
    assert "since:" in client.get("/admin/", params={"since": "whenever"}).text
    form = {"csrf": CSRF, "reason": "max_attempts", "source": "", "since": ""}
    assert client.post("/admin/ui/dlq/purge-matching", data=form).status_code == 303
    assert len(httpx.get(f"{ingest_url}/admin/dlq", headers=AUTH).json()) == 2
    answer = client.post("/admin/ui/dlq/replay-matching", data={**form, "reason": "unroutable"})
    assert answer.headers["location"] == "/admin/?notice=unroutable"  # no link yet
    form |= {"reason": "unroutable", "since": "1h"}
    assert client.post("/admin/ui/dlq/purge-matching", data=form).status_code == 303
    assert httpx.get(f"{ingest_url}/admin/dlq", headers=AUTH).json() == []
    client.close()


def test_a_link_set_inline_on_an_unroutable_row_replays_it(
    chromium: webdriver.Chrome,
    ingest_url: str,
    sandbox_url: str,
    start_worker: Callable[..., Any],
) -> None:
    send(ingest_url, "wait_1", external_id="T-77")
    (letter,) = httpx.get(f"{ingest_url}/admin/dlq", headers=AUTH).json()
    start_worker()
    sign_in(chromium, ingest_url)
    row = chromium.find_element(By.ID, f"dl-{letter['id']}")
    row.find_element(By.NAME, "agent_id").send_keys("agent-9")
    row.find_element(By.NAME, "convo_id").send_keys("c-9")
    shot(chromium, "dead-letter-inline-link")
    row.find_element(By.ID, f"set-link-{letter['id']}").click()
    assert "Linked" in text_after(chromium, "notice", "Linked")
    wait_until(
        lambda: (convo(sandbox_url, "agent-9", "c-9") or {}).get("title") == "from wait_1", 30
    )
    assert httpx.get(f"{ingest_url}/admin/dlq", headers=AUTH).json() == []


def test_a_replay_that_fails_again_points_to_the_letter_it_came_from(
    chromium: webdriver.Chrome,
    ingest_url: str,
    sandbox_url: str,
    start_worker: Callable[..., Any],
) -> None:
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"script": [422, 422]})
    start_worker()
    send(ingest_url, "twice", agent_id="agent-3", convo_id="c-3")
    (first,) = wait_until(lambda: httpx.get(f"{ingest_url}/admin/dlq", headers=AUTH).json())
    httpx.post(f"{ingest_url}/admin/dlq/{first['id']}/replay", headers=AUTH)
    (second,) = wait_until(
        lambda: [
            d
            for d in httpx.get(f"{ingest_url}/admin/dlq", headers=AUTH).json()
            if d["id"] != first["id"]
        ]
    )
    assert second["came_from"] == first["id"]
    sign_in(chromium, ingest_url)
    chromium.get(f"{ingest_url}/admin/ui/dlq/{second['id']}")
    assert first["id"] in chromium.find_element(By.ID, "came-from").text
    assert "twice" in chromium.find_element(By.ID, "letter-events").text
    assert "422" in chromium.find_element(By.ID, "letter-attempts").text
    shot(chromium, "dead-letter-detail")
    chromium.find_element(By.LINK_TEXT, first["id"]).click()
    history = text_after(chromium, "replay-history", "failed again")
    assert "replayed" in history and f"failed again as {second['id']}" in history
    chromium.get(f"{ingest_url}/admin/ui/dlq/nope")
    assert "No dead letter" in chromium.page_source


def test_retry_now_sends_a_scheduled_retry_at_once(
    make_settings: Callable[..., Any], sandbox_url: str, start_worker: Callable[..., Any]
) -> None:
    from bridge.app import build_app
    from tests.servers import serve_app_in_thread

    settings = make_settings("backoff_initial_s = 120\nbackoff_max_s = 120\n")
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"script": [503]})
    with serve_app_in_thread(build_app(settings)) as url:
        start_worker(settings)
        send(url, "later", agent_id="agent-4", convo_id="c-4")
        client = page_client(url)
        trace = "/admin/ui/conversation?agent_id=agent-4&convo_id=c-4"
        wait_until(lambda: 'id="retry-now"' in client.get(trace).text)
        form = {"csrf": CSRF, "agent_id": "agent-4", "convo_id": "c-4"}
        assert client.post("/admin/ui/retry-now", data=form).status_code == 303
        wait_until(
            lambda: (convo(sandbox_url, "agent-4", "c-4") or {}).get("title") == "from later"
        )
        client.close()


def test_the_api_replays_and_purges_by_filter(ingest_url) -> None:
    send(ingest_url, "f1", external_id="T-5")
    for body, status in (({"reason": 3}, 400), ({"since": "whenever"}, 400)):
        answer = httpx.post(f"{ingest_url}/admin/dlq/purge", json=body, headers=AUTH)
        assert answer.status_code == status and answer.json()["detail"].split(":")[0] in body
    kept = httpx.post(
        f"{ingest_url}/admin/dlq/purge", json={"reason": "max_attempts"}, headers=AUTH
    )
    assert kept.json() == {"purged": 0}
    gone = httpx.post(
        f"{ingest_url}/admin/dlq/purge",
        json={"reason": "unroutable", "source": "demo", "since": "1h"},
        headers=AUTH,
    )
    assert gone.json() == {"purged": 1}
