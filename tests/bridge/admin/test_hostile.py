"""The admin surface under hostile input and without Redis: a forged cookie or token is a
signed-out answer (never a 500), every route answers 503 JSON while Redis is away, and a
body that trickles in gets the same 408 as a slow webhook."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx
import pytest

from bridge.admin.auth import csrf_token, session_cookie
from bridge.app import build_app
from bridge.config import Settings
from tests.routes import admin_routes
from tests.servers import free_port, serve_app_in_thread

ADMIN = "admin-token"

# '²'.isdigit() is true and int('²') raises: the cookie's expiry must be ASCII digits
FORGED_COOKIES = [b"\xb2.abc", b"\xb2\xb3.", b"1\xb9.x", b"-1.abc", b"9" * 400 + b".abc"]
FORGED_BEARERS = [b"Bearer \xb2", b"Bearer admin-token\xe9", b"bearer \xff\xfe"]


@pytest.mark.parametrize("cookie", FORGED_COOKIES)
def test_a_forged_cookie_is_signed_out_on_every_admin_route(
    settings: Settings, cookie: bytes
) -> None:
    with serve_app_in_thread(build_app(settings)) as url:
        for method, path in admin_routes(settings, include_open=True):
            answer = httpx.request(
                method,
                url + path,
                headers={"Cookie": b"cb_admin=" + cookie},
                content=b"csrf=x",
                follow_redirects=False,
            )
            assert answer.status_code < 500, (method, path, answer.status_code, answer.text[:200])
            if path == "/admin/":
                assert answer.status_code == 200 and 'id="sign-in"' in answer.text
            elif path.startswith("/admin/ui/") or path == "/admin/logout":
                assert answer.status_code == 303, (method, path)
            elif path == "/admin/login":
                assert answer.status_code == 401
            elif path != "/admin":
                assert answer.status_code == 401, (method, path, answer.status_code)


@pytest.mark.parametrize("authorization", FORGED_BEARERS)
def test_a_non_ascii_bearer_token_is_401(settings: Settings, authorization: bytes) -> None:
    with serve_app_in_thread(build_app(settings)) as url:
        for method, path in admin_routes(settings):
            if path.startswith("/admin/ui/") or path == "/admin/logout":
                continue  # page buttons go by cookie
            answer = httpx.request(method, url + path, headers={"Authorization": authorization})
            assert answer.status_code == 401, (method, path, answer.status_code)


def test_a_non_ascii_token_on_the_sign_in_form_is_refused(settings: Settings) -> None:
    with serve_app_in_thread(build_app(settings)) as url:
        answer = httpx.post(
            f"{url}/admin/login",
            content=b"token=admin-token%C2%B2",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert answer.status_code == 401


def test_every_admin_route_is_503_json_while_redis_is_away(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    bearer = {"Authorization": f"Bearer {ADMIN}"}
    with serve_app_in_thread(build_app(settings)) as url:
        for method, path in admin_routes(settings):
            if path.startswith("/admin/ui/") or path == "/admin/logout":
                continue  # the page's buttons: below
            body = {"agent_id": "a", "convo_id": "c"} if method == "PUT" else {"all": True}
            if path.endswith("/clear"):
                body = {"future": True}
            answer = httpx.request(method, url + path, headers=bearer, json=body, timeout=30)
            assert answer.status_code == 503, (method, path, answer.status_code, answer.text[:300])
            assert answer.json()["error"] == "unavailable"
            assert "Traceback" not in answer.text
        cookies = {"cb_admin": session_cookie(ADMIN)}
        page = httpx.get(f"{url}/admin/", cookies=cookies, timeout=30)
        assert page.status_code == 503 and "Redis is unreachable" in page.text
        for path in (
            "/admin/ui/dlq/replay-all",
            "/admin/ui/dlq/purge-all",
            "/admin/ui/dlq/1-1/replay",
        ):
            answer = httpx.post(
                url + path, cookies=cookies, data={"csrf": csrf_token(ADMIN)}, timeout=30
            )
            assert answer.status_code == 503, (path, answer.status_code, answer.text[:300])


def _slow_post(url: str, path: str, head: str, body: bytes) -> tuple[str, float]:
    """Send the headers and a few bytes of the body, then nothing: the answer and the wait."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"{path}\r\nHost: x\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body[:3]
        )
        started = time.time()
        sock.settimeout(5)
        answer = sock.recv(4096).decode(errors="replace")
        return answer, time.time() - started


def test_a_slow_body_on_any_admin_route_gets_408(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings("[ingest]\nread_timeout_s = 0.5\n")
    form = "content-type: application/x-www-form-urlencoded\r\n"
    cookie = f"cookie: cb_admin={session_cookie(ADMIN)}\r\n"
    bearer = f"authorization: Bearer {ADMIN}\r\ncontent-type: application/json\r\n"
    body_of_form = f"csrf={csrf_token(ADMIN)}".encode()
    with serve_app_in_thread(build_app(settings)) as url:
        cases = [("POST /admin/login HTTP/1.1", form, b"token=" + ADMIN.encode())]
        for method, path in admin_routes(settings):
            if method not in ("POST", "PUT"):
                continue
            if path.startswith("/admin/ui/") or path == "/admin/logout":
                cases.append((f"{method} {path} HTTP/1.1", form + cookie, body_of_form))
            else:
                cases.append((f"{method} {path} HTTP/1.1", bearer, b'{"all": true}'))
        assert len(cases) >= 9
        timed_out = []
        for line, head, body in cases:
            answer, waited = _slow_post(url, line, head, body)
            if answer.startswith("HTTP/1.1 408"):
                assert 0.4 < waited < 3, (line, waited)
                timed_out.append(line.split()[1])
            else:  # a route that never reads its body answers at once
                assert waited < 0.4 and not answer.startswith("HTTP/1.1 5"), (line, answer[:200])
    assert {
        "/admin/login",
        "/admin/logout",
        "/admin/dlq/replay",
        "/admin/dlq/purge",
        "/admin/links/demo/ext-1",
        "/admin/ui/dlq/replay-all",
        "/admin/ui/dlq/1-1/purge",
    } <= set(timed_out), timed_out
