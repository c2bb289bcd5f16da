"""The /admin/ page: in headless Chromium (sign in, see a dead letter, replay it, see it gone
and the conversation updated, screenshots checked), and its defences over plain HTTP
(sign-in, CSRF, framing, no secrets on the page)."""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from bridge.admin.auth import csrf_token
from bridge.app import build_app
from bridge.config import Settings
from tests.conftest import SECRET, convo, wait_until
from tests.servers import serve_app_in_thread
from tests.signing import signed

ADMIN = "admin-token"
T0 = int(time.time() * 1000) - 60_000


@pytest.fixture(scope="module")
def browser(chromium: webdriver.Chrome) -> webdriver.Chrome:
    """The admin conftest's headless Chromium, under this module's name."""
    return chromium


@pytest.fixture
def admin_url(settings: Settings) -> Iterator[str]:
    with serve_app_in_thread(build_app(settings)) as url:
        yield url


def dead_letter_a_webhook(url: str, sandbox_url: str, start_worker: Callable[..., Any]) -> str:
    """Send one webhook the target refuses for good (422); its dead letter's id."""
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"script": [422]})
    body, headers = signed(
        SECRET,
        {
            "agent_id": "agent-7",
            "convo_id": "c-42",
            "occurred_at": T0,
            "set": {"title": "From the page"},
        },
    )
    assert httpx.post(f"{url}/webhooks/demo", content=body, headers=headers).status_code == 202
    start_worker()
    auth = {"Authorization": f"Bearer {ADMIN}"}
    letters = wait_until(lambda: httpx.get(f"{url}/admin/dlq", headers=auth).json())
    httpx.delete(f"{sandbox_url}/_sandbox/faults")
    return str(letters[0]["id"])


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def screenshot(driver: webdriver.Chrome, path: Path) -> Path:
    assert driver.save_screenshot(str(path))
    width, height = png_size(path)
    assert width >= 1000 and height >= 600, (width, height)
    assert path.stat().st_size > 15_000  # a blank page compresses to a few hundred bytes
    print(f"screenshot: {path}")
    return path


def test_replaying_a_dead_letter_from_the_page_in_chromium(
    browser: webdriver.Chrome,
    admin_url: str,
    sandbox_url: str,
    start_worker: Callable[..., Any],
    tmp_path: Path,
) -> None:
    dl_id = dead_letter_a_webhook(admin_url, sandbox_url, start_worker)
    wait = WebDriverWait(browser, 10)

    browser.get(f"{admin_url}/admin/")
    browser.find_element(By.ID, "token").send_keys(ADMIN)
    browser.find_element(By.ID, "sign-in").click()
    row = wait.until(ec.visibility_of_element_located((By.ID, f"dl-{dl_id}")))
    assert "422" in row.text and "agent-7 / c-42" in row.text and "rejected" in row.text
    status = browser.find_element(By.ID, "status").text
    assert "Dead letters\n1" in status and "Workers alive\n1" in status

    # it looks right: the styles ran under the CSP nonce, the table spans the page
    replay = browser.find_element(By.ID, f"replay-{dl_id}")
    assert replay.value_of_css_property("background-color") == "rgba(36, 87, 214, 1)"
    assert browser.find_element(By.ID, "dead-letters").size["width"] > 1000
    screenshot(browser, tmp_path / "admin-dead-letter.png")
    page = browser.page_source
    assert ADMIN not in page and "test-token" not in page and SECRET not in page

    replay.click()
    wait.until(ec.visibility_of_element_located((By.ID, "no-dead-letters")))
    assert "Replayed" in browser.find_element(By.ID, "notice").text
    wait_until(
        lambda: (convo(sandbox_url, "agent-7", "c-42") or {}).get("title") == "From the page"
    )
    browser.get(f"{admin_url}/admin/")
    assert "Dead letters\n0" in browser.find_element(By.ID, "status").text
    screenshot(browser, tmp_path / "admin-after-replay.png")


def test_page_cannot_be_framed_and_runs_scripts_only_by_nonce(admin_url: str) -> None:
    answer = httpx.get(f"{admin_url}/admin/")
    assert answer.status_code == 200 and 'name="token"' in answer.text  # the sign-in form
    assert answer.headers["x-frame-options"] == "DENY"
    csp = answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'nonce-" in csp
    assert answer.headers["cache-control"] == "no-store"


def test_a_wrong_token_does_not_sign_in(admin_url: str) -> None:
    answer = httpx.post(f"{admin_url}/admin/login", data={"token": "guess"})
    assert answer.status_code == 401 and "not the admin token" in answer.text
    assert "set-cookie" not in answer.headers


def signed_in(admin_url: str) -> httpx.Client:
    client = httpx.Client(base_url=admin_url)
    answer = client.post("/admin/login", data={"token": ADMIN})
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/admin" in cookie
    assert ADMIN not in cookie and "secure" not in cookie  # plain http here
    return client


def test_buttons_need_the_csrf_token(
    admin_url: str, sandbox_url: str, start_worker: Callable[..., Any]
) -> None:
    dl_id = dead_letter_a_webhook(admin_url, sandbox_url, start_worker)
    client = signed_in(admin_url)
    try:
        page = client.get("/admin/").text
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert token is not None and token.group(1) == csrf_token(ADMIN)
        for form in ({}, {"csrf": "0" * 64}):
            refused = client.post(f"/admin/ui/dlq/{dl_id}/purge", data=form)
            assert refused.status_code == 403
        # the JSON API with the cookie alone is refused too; with the header it works
        assert client.post(f"/admin/dlq/{dl_id}/replay").status_code == 403
        ok = client.post(f"/admin/ui/dlq/{dl_id}/purge", data={"csrf": token.group(1)})
        assert ok.status_code == 303 and ok.headers["location"] == "/admin/?notice=purged"
        assert client.get("/admin/dlq").json() == []
    finally:
        client.close()


def test_the_cookie_is_secure_behind_a_tls_proxy(admin_url: str) -> None:
    answer = httpx.post(
        f"{admin_url}/admin/login", data={"token": ADMIN}, headers={"X-Forwarded-Proto": "https"}
    )
    assert answer.status_code == 303 and "secure" in answer.headers["set-cookie"].lower()


def test_without_an_admin_token_the_page_does_not_exist(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(env={"BRIDGE_ADMIN_TOKEN": ""})
    with serve_app_in_thread(build_app(settings)) as url:
        assert httpx.get(f"{url}/admin/").status_code == 404
        assert httpx.post(f"{url}/admin/login", data={"token": ""}).status_code == 404
