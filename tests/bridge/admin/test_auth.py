"""Every admin route, API and page alike, refuses a missing or wrong token (and a wrong
cookie); with no admin token configured they all answer 404. Answers are not framable."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from bridge.admin.auth import session_cookie
from bridge.app import build_app
from bridge.config import Settings
from tests.routes import admin_routes
from tests.servers import serve_app_in_thread


@pytest.mark.parametrize(
    "credentials",
    [
        {},
        {"headers": {"Authorization": "Bearer wrong"}},
        {"headers": {"Authorization": "Basic YWRtaW4tdG9rZW4="}},
        {"headers": {"Authorization": "Bearer admin-token-and-more"}},
        {"cookies": {"cb_admin": "wrong"}},
        {"cookies": {"cb_admin": "admin-token"}},  # the token itself is not a session
        {"cookies": {"cb_admin": session_cookie("admin-token", now=time.time() - 13 * 3600)}},
        {"cookies": {"cb_admin": session_cookie("another-token")}},
    ],
)
def test_every_admin_route_refuses_without_the_token(
    settings: Settings, credentials: dict[str, dict[str, str]]
) -> None:
    routes = admin_routes(settings)
    assert len(routes) >= 15
    with serve_app_in_thread(build_app(settings)) as url:
        client = httpx.Client(
            base_url=url, cookies=credentials.get("cookies"), follow_redirects=False
        )
        for method, path in routes:
            answer = client.request(
                method, path, headers=credentials.get("headers"), json={"all": True}
            )
            if path.startswith("/admin/ui/") or path == "/admin/logout":
                # page buttons: back to the sign-in form, nothing done
                assert answer.status_code == 303 and answer.headers["location"] == "/admin/", (
                    method,
                    path,
                )
            else:
                assert answer.status_code == 401, (method, path, answer.status_code)
                assert answer.headers["x-frame-options"] == "DENY"
            assert "admin-token" not in answer.text
        client.close()


def test_without_a_configured_token_every_admin_route_is_404(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(env={"BRIDGE_ADMIN_TOKEN": ""})
    with serve_app_in_thread(build_app(settings)) as url:
        for method, path in [*admin_routes(settings), ("GET", "/admin/"), ("POST", "/admin/login")]:
            answer = httpx.request(method, url + path, headers={"Authorization": "Bearer x"})
            assert answer.status_code == 404, (method, path)
