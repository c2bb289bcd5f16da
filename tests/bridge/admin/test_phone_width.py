"""Every view of the page at phone width (390 px) in headless Chromium: nothing wider than
the screen, so no sideways scrolling; a screenshot of each under tests/artifacts/."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from selenium import webdriver

from tests.bridge.admin.conftest import ADMIN, shot, sign_in
from tests.conftest import SECRET, wait_until
from tests.signing import signed

T0 = 1_764_000_000_000
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def phone(chromium: webdriver.Chrome) -> Iterator[webdriver.Chrome]:
    chromium.delete_all_cookies()
    chromium.set_window_size(390, 844)
    try:
        yield chromium
    finally:
        chromium.set_window_size(1400, 900)


def wide_elements(driver: webdriver.Chrome) -> list[str]:
    """What sticks out past the viewport's right edge (empty when nothing does)."""
    return list(
        driver.execute_script(
            """
            var w = document.documentElement.clientWidth, out = [];
            document.querySelectorAll('body *').forEach(function (e) {
              var r = e.getBoundingClientRect();
              if (r.width && r.right > w + 1) out.push(e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(r.right));
            });
            if (document.documentElement.scrollWidth > w) out.push('page ' + document.documentElement.scrollWidth);
            return out.slice(0, 10);
            """
        )
    )


def test_every_view_fits_a_phone(
    phone: webdriver.Chrome,
    ingest_url: str,
    sandbox_url: str,
    start_worker: Callable[..., Any],
) -> None:
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"script": [422]})
    start_worker()
    for msg_id, ids in (
        ("phone_dead", {"agent_id": "agent-with-a-long-name-7", "convo_id": "conversation-42"}),
        ("phone_wait", {"external_id": "TICKET-WITH-A-LONG-IDENTIFIER-123456"}),
    ):
        body, headers = signed(
            SECRET, {**ids, "occurred_at": T0, "set": {"title": "x" * 120}}, msg_id=msg_id
        )
        httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=headers)
    letters = wait_until(
        lambda: [
            d
            for d in httpx.get(f"{ingest_url}/admin/dlq", headers=AUTH).json()
            if d["reason"] != "unroutable"
        ]
    )
    views = {
        "sign-in": "/admin/",
        "main": "/admin/",
        "trace": "/admin/ui/conversation?agent_id=agent-with-a-long-name-7&convo_id=conversation-42",
        "events": "/admin/ui/events",
        "events-filtered": "/admin/ui/events?event_id=phone_dead",
        "dead-letter": f"/admin/ui/dlq/{letters[0]['id']}",
    }
    failures = {}
    for name, path in views.items():
        if name == "main":
            sign_in(phone, ingest_url)
        phone.get(ingest_url + path)
        if name.startswith("events"):
            for summary in phone.find_elements("tag name", "summary")[:2]:
                summary.click()
        wide = wide_elements(phone)
        if wide:
            failures[name] = wide
        shot(phone, f"phone-{name}")
    assert failures == {}
