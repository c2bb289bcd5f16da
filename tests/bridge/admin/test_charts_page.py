"""The page's charts in headless Chromium: drawn as inline SVG by the page's own script
(no outside request), for the last hour and, at a click, the last day."""

from __future__ import annotations

import httpx
from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.bridge.admin.conftest import shot, sign_in
from tests.conftest import SECRET
from tests.signing import signed


def test_the_history_charts_are_drawn_offline(chromium: webdriver.Chrome, ingest_url: str) -> None:
    for i in range(3):
        body, headers = signed(
            SECRET,
            {
                "agent_id": "a",
                "convo_id": f"c{i}",
                "occurred_at": 1_764_000_000_000,
                "set": {"title": "t"},
            },
        )
        httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=headers)
    sign_in(chromium, ingest_url)
    charts = chromium.find_elements(By.CSS_SELECTOR, "#charts figure svg")
    assert [c.get_attribute("id") for c in charts] == [
        "chart-webhooks",
        "chart-patches",
        "chart-latency",
        "chart-queue",
        "chart-dead",
    ]
    webhooks = chromium.find_element(By.ID, "chart-webhooks")
    assert webhooks.find_elements(By.CSS_SELECTOR, "path.series")
    assert "demo accepted" in chromium.find_element(By.ID, "charts").text
    assert webhooks.size["width"] > 300
    # nothing was fetched from anywhere but the bridge itself
    sources = chromium.execute_script(
        "return performance.getEntriesByType('resource').map(function (r) { return r.name; })"
    )
    assert all(s.startswith(ingest_url) for s in sources), sources
    shot(chromium, "charts-last-hour")
    chromium.find_element(By.ID, "range-24h").click()
    assert chromium.find_element(By.ID, "range-24h").get_attribute("aria-pressed") == "true"
    assert chromium.find_element(By.ID, "chart-webhooks").find_elements(By.CSS_SELECTOR, "path")
    shot(chromium, "charts-last-day")
