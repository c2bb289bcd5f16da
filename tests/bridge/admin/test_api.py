"""The admin JSON API's delivery switch: POST /admin/delivery/pause and /resume set RQ's
suspension (as `rq suspend` / `rq resume` and the page's buttons), seen by /admin/status."""

from __future__ import annotations

import httpx

from bridge.admin.auth import csrf_token, session_cookie
from tests.bridge.admin.conftest import ADMIN

AUTH = {"Authorization": f"Bearer {ADMIN}"}


def _paused(url: str) -> object:
    return httpx.get(f"{url}/admin/status", headers=AUTH).json()["delivery_paused"]


def test_the_api_pauses_and_resumes_delivery(ingest_url: str) -> None:
    paused = httpx.post(f"{ingest_url}/admin/delivery/pause", headers=AUTH)
    assert paused.status_code == 200 and paused.json() == {"delivery_paused": True}
    assert paused.headers["x-frame-options"] == "DENY"
    assert _paused(ingest_url) is True
    resumed = httpx.post(f"{ingest_url}/admin/delivery/resume", headers=AUTH)
    assert resumed.status_code == 200 and resumed.json() == {"delivery_paused": False}
    assert _paused(ingest_url) is False


def test_pausing_by_cookie_needs_the_csrf_header(ingest_url: str) -> None:
    cookies = {"cb_admin": session_cookie(ADMIN)}
    with httpx.Client(base_url=ingest_url, cookies=cookies) as client:
        refused = client.post("/admin/delivery/pause")
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        assert _paused(ingest_url) is False
        done = client.post("/admin/delivery/pause", headers={"X-CSRF-Token": csrf_token(ADMIN)})
        assert done.status_code == 200 and _paused(ingest_url) is True
    assert httpx.post(f"{ingest_url}/admin/delivery/resume").status_code == 401
