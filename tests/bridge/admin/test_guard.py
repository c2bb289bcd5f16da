"""The one guard in front of /admin/ and the one handler per error class behind it: each
side (JSON API, page) keeps its own answers, a path no route takes is answered like any
other, an id with a line break still reaches its route, and every admin 503 says when to
retry."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from bridge.admin.auth import csrf_token, session_cookie
from bridge.app import build_app
from bridge.config import Settings
from tests.bridge.admin.conftest import ADMIN
from tests.servers import free_port, serve_app_in_thread

AUTH = {"Authorization": f"Bearer {ADMIN}"}


def test_without_a_token_the_api_and_the_page_each_answer_their_404(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(env={"BRIDGE_ADMIN_TOKEN": ""})
    with serve_app_in_thread(build_app(settings)) as url:
        api = httpx.get(f"{url}/admin/status", headers=AUTH)
        page = httpx.post(f"{url}/admin/login", data={"token": ADMIN})
    assert api.status_code == 404 and api.json() == {"error": "not_found"}
    assert page.status_code == 404 and page.text == "Not Found"
    assert page.headers["content-type"].startswith("text/plain")
    assert page.headers["x-frame-options"] == "DENY"


def test_a_path_or_method_no_admin_route_takes_is_answered_like_any_other(
    ingest_url: str,
) -> None:
    for headers in ({}, AUTH):
        missing = httpx.get(f"{ingest_url}/admin/no-such-thing", headers=headers)
        assert missing.status_code == 404
        assert missing.json() == {"error": "not_found", "detail": "Not Found"}
        wrong = httpx.get(f"{ingest_url}/admin/login", headers=headers)
        assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    moved = httpx.get(f"{ingest_url}/admin", follow_redirects=False)
    assert moved.status_code == 308 and moved.headers["location"] == "/admin/"


def test_an_id_with_a_line_break_reaches_its_route_behind_the_guard(ingest_url: str) -> None:
    api = httpx.get(f"{ingest_url}/admin/dlq/a%0Ab", headers=AUTH)
    assert api.status_code == 404 and api.json()["detail"].startswith("no dead letter")
    page = httpx.get(f"{ingest_url}/admin/ui/dlq/a%0Ab", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/admin/"


def test_the_page_and_the_api_refuse_a_bad_body_each_in_their_own_shape(
    ingest_url: str,
) -> None:
    cookies = {"cb_admin": session_cookie(ADMIN)}
    page = httpx.post(
        f"{ingest_url}/admin/ui/links",
        cookies=cookies,
        data={"csrf": csrf_token(ADMIN), "source": "nope"},
    )
    assert page.status_code == 400 and page.text == "source: no source named 'nope'"
    api = httpx.put(f"{ingest_url}/admin/links/demo/ext-1", headers=AUTH, content=b"[1]")
    assert api.status_code == 400
    assert api.json() == {"error": "invalid_payload", "detail": "expected a JSON object"}
    assert api.headers["x-frame-options"] == "DENY"


def test_every_admin_503_says_when_to_retry(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    with serve_app_in_thread(build_app(settings)) as url:
        api = httpx.post(f"{url}/admin/delivery/pause", headers=AUTH, timeout=30)
        page = httpx.post(
            f"{url}/admin/ui/pause",
            cookies={"cb_admin": session_cookie(ADMIN)},
            data={"csrf": csrf_token(ADMIN)},
            timeout=30,
        )
        front = httpx.get(f"{url}/admin/", cookies={"cb_admin": session_cookie(ADMIN)}, timeout=30)
    assert front.status_code == 503 and front.headers["retry-after"] == "5"
    assert api.status_code == 503 and api.headers["retry-after"] == "5"
    assert api.json() == {"error": "unavailable", "detail": "Redis is unreachable"}
    assert page.status_code == 503 and page.headers["retry-after"] == "5"
    assert page.text == "Redis is unreachable; try again shortly."
