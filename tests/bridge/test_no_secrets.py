"""No secret, token or whole body in logs, error answers, dead letters or the admin page,
across a forged request, a bad body, an accepted event and a dead-lettered delivery."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from bridge.logs import JsonFormatter
from tests.conftest import SECRET, wait_until
from tests.signing import signed, standard_headers

MARKER = "private-customer-note-7f3a9"


def test_secrets_and_bodies_stay_out_of_every_output(
    ingest_url: str,
    sandbox_url: str,
    start_worker: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    payload = {
        "agent_id": "a",
        "convo_id": "c",
        "occurred_at": int(time.time() * 1000),
        "set": {"notes": MARKER},
    }
    answers = []
    body, headers = signed(SECRET, payload)
    forged = dict(headers, **{"webhook-signature": "v1,AAAA"})
    answers.append(httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=forged))
    bad = orjson.dumps({**payload, "set": {"notes": MARKER, "lastModified": 1}})
    answers.append(
        httpx.post(
            f"{ingest_url}/webhooks/demo", content=bad, headers=standard_headers(SECRET, bad)
        )
    )
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"script": [422]})
    answers.append(httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=headers))
    assert [a.status_code for a in answers] == [401, 400, 202]
    start_worker()
    auth = {"Authorization": "Bearer admin-token"}
    letters = wait_until(lambda: httpx.get(f"{ingest_url}/admin/dlq", headers=auth).json())
    shown = httpx.get(f"{ingest_url}/admin/dlq/{letters[0]['id']}", headers=auth).text
    with httpx.Client(base_url=ingest_url) as browser:
        signed_in = browser.post("/admin/login", data={"token": "admin-token"})
        cookie = signed_in.cookies["cb_admin"]
        page = browser.get("/admin/").text
    assert "admin-token" not in cookie  # the cookie proves the sign-in, it is not the token
    assert letters[0]["id"] in page

    formatter = JsonFormatter()
    logged = "\n".join(formatter.format(r) for r in caplog.records)
    assert "dead-lettered" in logged and "refused" in logged  # the events were logged
    secrets = [SECRET, SECRET.removeprefix("whsec_"), "test-token", "admin-token"]
    for where, text in [("logs", logged), ("dead letter", shown), ("admin page", page)] + [
        (f"answer {a.status_code}", a.text) for a in answers
    ]:
        for secret in secrets:
            assert secret not in text, (where, secret)
        assert body.decode() not in text and bad.decode() not in text, where
    assert MARKER not in logged  # field values are not logged either
    assert MARKER in shown  # the dead letter keeps the change itself, to replay it
