"""A field an earlier bad clock froze (an applied value dated in the future) can be seen and
cleared, by the admin API and by `convo-bridge fields`, so the next event wins. The
frozen value is made the way it happened before ingest clamped such times: an ingest that
believes any time (max_clock_skew_s huge). Real Redis, sandbox, worker thread, CLI."""

import os
import subprocess
import sys
import time

import httpx
import pytest

from bridge.app import build_app
from tests.conftest import SECRET, convo, wait_until
from tests.servers import serve_app_in_thread
from tests.signing import signed

Y2099_MS = 4_102_358_400_000
HEADERS = {"authorization": "Bearer admin-token"}
BELIEVE_ANY_TIME = "[ingest]\nmax_clock_skew_s = 4000000000\n"


def send(url, at, **fields):
    payload = {"agent_id": "a1", "convo_id": "c1", "occurred_at": at, "set": fields}
    body, headers = signed(SECRET, payload)
    answer = httpx.post(f"{url}/webhooks/demo", content=body, headers=headers)
    assert answer.status_code == 202, answer.text


def title(sandbox_url):
    c = convo(sandbox_url, "a1", "c1")
    return c.get("title") if c else None


@pytest.fixture
def frozen(make_settings, sandbox_url, start_worker):
    """An ingest URL, and the conversation's title and userName applied as of 2099."""
    settings = make_settings(BELIEVE_ANY_TIME)
    start_worker(settings)
    with serve_app_in_thread(build_app(settings)) as ingest:
        send(ingest, Y2099_MS, title="from 2099", userName="u2099")
        wait_until(lambda: title(sandbox_url) == "from 2099")
        send(ingest, int(time.time() * 1000), title="now")
        time.sleep(0.5)  # give it every chance: it is dropped, older than 2099
        assert title(sandbox_url) == "from 2099"
        yield ingest


def test_admin_shows_and_clears_a_field_frozen_in_the_future(frozen, sandbox_url):
    admin = f"{frozen}/admin/conversations/a1/c1"
    shown = httpx.get(f"{admin}/future", headers=HEADERS).json()
    assert [e["name"] for e in shown["entries"]] == ["f:title", "f:userName"]
    assert shown["entries"][0]["occurred_at"] == Y2099_MS and shown["now"] < Y2099_MS
    trace = httpx.get(admin, headers=HEADERS).json()
    assert any("dated in the future" in line for line in trace["verdict"])
    for bad in ({}, {"field": ""}, {"field": 3}, {"future": False}, {"field": "x", "future": True}):
        answer = httpx.post(f"{admin}/clear", json=bad, headers=HEADERS)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_payload", bad
    cleared = httpx.post(f"{admin}/clear", json={"field": "title"}, headers=HEADERS)
    assert cleared.status_code == 200 and cleared.json() == {"cleared": ["f:title"]}
    send(frozen, int(time.time() * 1000), title="after clearing", userName="u-now")
    wait_until(lambda: title(sandbox_url) == "after clearing")
    assert convo(sandbox_url, "a1", "c1")["userName"] == "u2099"  # still frozen: not cleared
    everything = httpx.post(f"{admin}/clear", json={"future": True}, headers=HEADERS).json()
    assert everything == {"cleared": ["f:userName"]}
    assert httpx.get(f"{admin}/future", headers=HEADERS).json()["entries"] == []


def test_the_cli_shows_and_clears_every_field_frozen_in_the_future(
    frozen, sandbox_url, bridge_env, settings
):
    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "bridge.cli", "fields", *args],
            capture_output=True,
            text=True,
            env={**os.environ, **bridge_env, "BRIDGE_CONFIG": settings.path},
            timeout=60,
        )

    shown = cli("future", "a1", "c1")
    assert shown.returncode == 0, shown.stderr
    assert "f:title" in shown.stdout and "2099-12-31" in shown.stdout
    refused = cli("clear", "a1", "c1")
    assert refused.returncode == 1 and "--future" in refused.stderr
    cleared = cli("clear", "a1", "c1", "--future", "--json")
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout.split() == [
        "{",
        '"cleared":',
        "[",
        '"f:title",',
        '"f:userName"',
        "]",
        "}",
    ]
    send(frozen, int(time.time() * 1000), title="after clearing")
    wait_until(lambda: title(sandbox_url) == "after clearing")
    assert "no applied value" in cli("future", "a1", "c1").stdout
