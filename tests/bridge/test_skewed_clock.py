"""One clock for every host: a `serve` whose clock runs 30 s ahead (under libfaketime, a real
process; Redis and httpx untouched) still has its events delivered at once, and events
dated by their receipt (a Freshdesk rule without `updated_at`) keep their real order across
a skewed and a true replica, because receipt times are Redis's."""

import glob
import os
import subprocess
import sys
import time

import httpx
import pytest

from bridge.app import build_app
from bridge.config import load_settings
from tests.conftest import SECRET, TEST_DELIVERY, convo, wait_until
from tests.servers import free_port, ready, serve_app_in_thread, spawn, stop
from tests.signing import signed

# libfaketime preloaded into the process itself: the `faketime` wrapper forks, and a SIGTERM
# to it would leave the real serve or worker running on the session's Redis after the test
LIBFAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
pytestmark = pytest.mark.skipif(
    not LIBFAKETIME, reason="needs libfaketime (apt-get install faketime)"
)
AHEAD_S = 30


def skewed(offset: str, env: dict[str, str]) -> dict[str, str]:
    """`env` for a process whose clock is `offset` ("+30s", "-30s") off every other's."""
    return {**env, "LD_PRELOAD": LIBFAKETIME[0], "FAKETIME": offset}


FD_SECRET = "fd-secret-for-the-skew-test"


@pytest.fixture
def config(tmp_path, bridge_env):
    path = tmp_path / "skew.toml"  # config.toml is the `settings` fixture's
    delivery = "".join(f"{k} = {v}\n" for k, v in TEST_DELIVERY.items())
    path.write_text(
        '[sources.demo]\nkind = "standard"\nsecret_env = "DEMO_SECRET"\n'
        '[sources.freshdesk]\nkind = "freshdesk"\nsecret_env = "FD_SECRET"\n'
        'default_agent_id = "a1"\n'
        "[delivery]\n" + delivery
    )
    env = {**bridge_env, "FD_SECRET": FD_SECRET}
    return path, env


@pytest.fixture
def skewed_serve(config):
    """`convo-bridge serve` with its clock AHEAD_S seconds ahead of every other process."""
    path, env = config
    port = free_port()
    args = [sys.executable, "-m", "bridge.cli", "--config", str(path), "serve"]
    proc = spawn([*args, "--port", str(port)], skewed(f"+{AHEAD_S}s", env))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: ready(url) or proc.poll() is not None, timeout_s=30)
        assert proc.poll() is None, "serve under faketime exited"
        yield url
    finally:
        stop([proc], 20)


def test_the_skewed_serve_really_runs_ahead():
    shown = subprocess.run(
        [sys.executable, "-c", "import time; print(time.time())"],
        capture_output=True,
        text=True,
        check=True,
        env=skewed(f"+{AHEAD_S}s", dict(os.environ)),
    )
    assert float(shown.stdout) - time.time() > AHEAD_S - 5


def test_a_serve_whose_clock_runs_ahead_has_its_events_delivered_at_once(
    config, skewed_serve, sandbox_url, start_worker
):
    path, env = config
    start_worker(load_settings(path, env))
    payload = {
        "agent_id": "a1",
        "convo_id": "c1",
        "occurred_at": int(time.time() * 1000),
        "set": {"title": "prompt"},
    }
    body, headers = signed(SECRET, payload)
    sent = time.monotonic()
    answer = httpx.post(f"{skewed_serve}/webhooks/demo", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    wait_until(
        lambda: (c := convo(sandbox_url, "a1", "c1")) and c.get("title") == "prompt",
        timeout_s=AHEAD_S - 5,
    )
    assert time.monotonic() - sent < 10  # it was due when received, not AHEAD_S later


def test_receipt_dated_events_keep_their_order_across_skewed_and_true_replicas(
    config, skewed_serve, sandbox_url, start_worker
):
    path, env = config
    settings = load_settings(path, env)
    start_worker(settings)

    def assign(url, who):
        body = (
            f'{{"ticket_id": "T-9", "event": "assigned", "status": "Open", '
            f'"agent_email": "{who}", "group": "", "tags": "", "updated_at": ""}}'
        ).encode()
        answer = httpx.post(
            f"{url}/webhooks/freshdesk",
            content=body,
            headers={"content-type": "application/json", "x-bridge-secret": FD_SECRET},
        )
        assert answer.status_code == 202, (url, answer.text)

    with serve_app_in_thread(build_app(settings)) as true_serve:
        assign(skewed_serve, "first@acme.test")  # received first, by the replica ahead
        wait_until(
            lambda: (
                (c := convo(sandbox_url, "a1", "T-9"))
                and c.get("chatAssignedTo") == "first@acme.test"
            )
        )
        assign(true_serve, "second@acme.test")  # received later: the newest
        wait_until(
            lambda: (
                (c := convo(sandbox_url, "a1", "T-9"))
                and c.get("chatAssignedTo") == "second@acme.test"
            )
        )


def test_a_worker_whose_clock_runs_behind_delivers_at_once(config, sandbox_url):
    path, env = config
    with serve_app_in_thread(build_app(load_settings(path, env))) as ingest:
        args = [sys.executable, "-m", "bridge.cli", "--config", str(path), "worker"]
        worker = spawn(args, skewed(f"-{AHEAD_S}s", env))
        try:
            payload = {"agent_id": "a1", "convo_id": "c2", "occurred_at": int(time.time() * 1000)}
            body, headers = signed(SECRET, {**payload, "set": {"title": "behind"}})
            sent = time.monotonic()
            answer = httpx.post(f"{ingest}/webhooks/demo", content=body, headers=headers)
            assert answer.status_code == 202, answer.text
            wait_until(
                lambda: (c := convo(sandbox_url, "a1", "c2")) and c.get("title") == "behind",
                timeout_s=AHEAD_S - 5,
            )
            assert time.monotonic() - sent < 15  # start-up included; due at once, not in 30 s
        finally:
            stop([worker], 20)
