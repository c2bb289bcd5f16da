"""The page's event log in headless Chromium: from a conversation's trace to its events,
from an event to its PATCHes, a row opened on its headers and body; a bad filter named."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.bridge.admin.conftest import ADMIN, shot, sign_in
from tests.conftest import SECRET, wait_until
from tests.signing import signed

T0 = 1_764_000_000_000


def send(url: str, msg_id: str, title: str) -> None:
    body, headers = signed(
        SECRET,
        {"agent_id": "agent-7", "convo_id": "c-42", "occurred_at": T0, "set": {"title": title}},
        msg_id=msg_id,
    )
    assert httpx.post(f"{url}/webhooks/demo", content=body, headers=headers).status_code == 202


def test_from_a_trace_to_its_events_and_from_an_event_to_its_patches(
    chromium: webdriver.Chrome, ingest_url: str, start_worker: Callable[..., Any]
) -> None:
    start_worker()
    send(ingest_url, "msg_page", "Seen on the page")
    auth = {"Authorization": f"Bearer {ADMIN}"}
    wait_until(
        lambda: httpx.get(
            f"{ingest_url}/admin/events", params={"kind": "patch"}, headers=auth
        ).json()["events"]
    )
    body, headers = signed(SECRET, {"agent_id": "agent-7"})
    headers["webhook-signature"] = "v1,bm9wZQ=="
    httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=headers)

    sign_in(chromium, ingest_url)
    chromium.get(f"{ingest_url}/admin/ui/conversation?agent_id=agent-7&convo_id=c-42")
    chromium.find_element(By.ID, "conversation-events").click()
    table = chromium.find_element(By.ID, "events")
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[3].text for r in rows] == ["applied", "accepted"]
    shot(chromium, "events-of-a-conversation")

    rows[1].find_element(By.LINK_TEXT, "msg_page").click()
    rows = chromium.find_elements(By.CSS_SELECTOR, "#events tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == ["PATCH", "POST demo"]
    rows[1].find_element(By.TAG_NAME, "summary").click()
    opened = rows[1].text
    assert "Seen on the page" in opened and "webhook-id: msg_page" in opened
    assert "webhook-signature: (redacted)" in opened and SECRET not in chromium.page_source
    rows[0].find_element(By.TAG_NAME, "summary").click()
    assert '{"conversation":{"title":"Seen on the page"}}' in rows[0].text
    shot(chromium, "events-of-an-event")

    chromium.get(f"{ingest_url}/admin/ui/events?verdict=refused")
    (refused,) = chromium.find_elements(By.CSS_SELECTOR, "#events tbody tr")
    assert "401" in refused.text and "refused" in refused.text

    chromium.get(f"{ingest_url}/admin/ui/events?since=yesterday")
    assert "since:" in chromium.find_element(By.CSS_SELECTOR, "[role=alert]").text


def test_the_events_view_needs_a_sign_in(ingest_url: str) -> None:
    answer = httpx.get(f"{ingest_url}/admin/ui/events", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/"
