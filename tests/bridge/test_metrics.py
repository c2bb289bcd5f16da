"""/metrics: Prometheus text from serve (requests, intents, queue gauges) and from a worker
(PATCHes, latencies) on its own port, or all together in multiprocess mode."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SECRET, wait_until, write_config
from tests.servers import cli, free_port, ready, stop
from tests.signing import signed

T0 = int(time.time() * 1000) - 60_000


def value(text: str, name: str, **labels: str) -> float:
    """The sample `name{labels}` in exposition text (labels matched as a subset), or 0."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def send(url: str, convo: str, **extra: Any) -> httpx.Response:
    body, headers = signed(
        SECRET,
        {"agent_id": "m", "convo_id": convo, "occurred_at": T0, "set": {"title": "x"}, **extra},
    )
    return httpx.post(f"{url}/webhooks/demo", content=body, headers=headers)


def test_serve_counts_requests_and_intents_and_reports_the_queue(
    ingest_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bridge.app.QUEUE_SNAPSHOT_S", 0.0)  # read the queue on every scrape
    before = httpx.get(f"{ingest_url}/metrics").text
    assert send(ingest_url, "c1").status_code == 202
    body, headers = signed(SECRET, {"agent_id": "m", "convo_id": "c1", "occurred_at": T0})
    assert (
        httpx.post(f"{ingest_url}/webhooks/nope", content=body, headers=headers).status_code == 404
    )
    answer = httpx.get(f"{ingest_url}/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    after = answer.text
    grew = lambda name, **labels: value(after, name, **labels) - value(before, name, **labels)  # noqa: E731
    assert grew("convo_bridge_webhook_requests_total", source="demo", status="202") == 1
    assert grew("convo_bridge_webhook_requests_total", source="_unknown", status="404") == 1
    assert grew("convo_bridge_intents_total", source="demo", outcome="accepted") == 1
    assert value(after, "convo_bridge_queue_depth") == 1  # no worker runs here
    assert (
        "convo_bridge_dead_letters" in after
        and 'convo_bridge_circuit_open{scope="cluster"} 0.0' in after
    )


def scrape(url: str) -> str:
    try:
        return httpx.get(url, timeout=2).text
    except httpx.HTTPError:
        return ""


def run_pair(
    tmp_path: Path, env: dict[str, str], worker_args: list[str]
) -> tuple[str, list[subprocess.Popen[bytes]]]:
    config = write_config(tmp_path)
    port = free_port()
    procs = [
        cli("--config", str(config), "serve", "--port", str(port), env=env),
        cli("--config", str(config), "worker", *worker_args, env=env),
    ]

    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: ready(url, "/healthz"), timeout_s=20)
    return url, procs


def test_a_worker_serves_its_own_metrics_on_its_port(
    tmp_path: Path, bridge_env: dict[str, str]
) -> None:
    mport = free_port()
    url, procs = run_pair(tmp_path, bridge_env, ["--metrics-port", str(mport)])
    try:
        assert send(url, "w1").status_code == 202
        worker = f"http://127.0.0.1:{mport}/metrics"
        text = wait_until(
            lambda: (
                (t := scrape(worker))
                and value(t, "convo_bridge_patches_total", status="ok") >= 1
                and t
            ),
            timeout_s=20,
        )
        assert value(text, "convo_bridge_webhook_to_patch_seconds_count") >= 1
        assert value(text, "convo_bridge_patch_attempt_seconds_count") >= 1
    finally:
        stop(procs)


def test_multiprocess_mode_adds_up_every_process(
    tmp_path: Path, bridge_env: dict[str, str]
) -> None:
    shared = tmp_path / "prom"
    shared.mkdir()
    url, procs = run_pair(tmp_path, {**bridge_env, "PROMETHEUS_MULTIPROC_DIR": str(shared)}, [])
    try:
        for i in range(3):
            assert send(url, f"mp{i}").status_code == 202
        text = wait_until(
            lambda: (
                (t := scrape(f"{url}/metrics"))
                and value(t, "convo_bridge_patches_total", status="ok") >= 3
                and t
            ),
            timeout_s=20,
        )  # the worker's PATCHes, seen through serve's endpoint
        assert value(text, "convo_bridge_webhook_requests_total", source="demo", status="202") == 3
    finally:
        stop(procs)


def test_serve_reports_delivery_paused_while_workers_are_suspended(
    ingest_url: str, rclient: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rq.suspension import resume, suspend

    monkeypatch.setattr("bridge.app.QUEUE_SNAPSHOT_S", 0.0)  # read the queue on every scrape
    text = httpx.get(f"{ingest_url}/metrics").text
    assert 'convo_bridge_delivery_paused{scope="cluster"} 0.0' in text
    suspend(rclient)
    try:
        text = httpx.get(f"{ingest_url}/metrics").text
        assert 'convo_bridge_delivery_paused{scope="cluster"} 1.0' in text
    finally:
        resume(rclient)


def test_serve_does_not_export_the_worker_only_metrics(ingest_url: str) -> None:
    """serve never PATCHes: its /metrics used to show both latency histograms at 0."""
    text = httpx.get(f"{ingest_url}/metrics").text
    assert "convo_bridge_webhook_requests_total" in text
    for name in ("webhook_to_patch_seconds", "patch_attempt_seconds", "patches_total"):
        assert f"convo_bridge_{name}" not in text, name
