"""/metrics while Redis is away keeps answering with the process's own counters (so
Prometheus still sees serve, and the 503s it answers) and leaves the Redis-read gauges out;
the queue is read single-flight, however many scrapes arrive at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
import redis

from bridge.app import build_app
from bridge.config import Settings
from bridge.local.redis_server import RedisServer
from tests.bridge.test_metrics import send, value
from tests.conftest import wait_until
from tests.servers import free_port, serve_app_in_thread


async def scrape_at_once(url: str, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        return await asyncio.gather(*(client.get(f"{url}/metrics") for _ in range(n)))


def test_metrics_answer_with_the_process_counters_while_redis_is_away(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    with serve_app_in_thread(build_app(settings)) as url:
        before = httpx.get(f"{url}/metrics").text  # (the counters are the test process's)
        assert send(url, "away-1").status_code == 503
        answer = httpx.get(f"{url}/metrics")
        burst = asyncio.run(scrape_at_once(url, 200))
    assert answer.status_code == 200, answer.text[:300]
    text = answer.text
    labels = {"source": "demo", "status": "503"}
    grew = value(text, "convo_bridge_webhook_requests_total", **labels) - value(
        before, "convo_bridge_webhook_requests_total", **labels
    )
    assert grew == 1
    assert value(text, "convo_bridge_redis_up") == 0 and "convo_bridge_redis_up 0.0" in text
    for gauge in ("queue_depth", "in_flight", "dead_letters", "circuit_open", "workers_alive"):
        assert f"convo_bridge_{gauge}" not in text, gauge
    assert [r.status_code for r in burst] == [200] * 200
    assert all("convo_bridge_webhook_requests_total" in r.text for r in burst)


def test_concurrent_scrapes_share_one_read_of_the_queue(
    ingest_url: str, rclient: redis.Redis
) -> None:
    def connections() -> int:
        return int(rclient.info("stats")["total_connections_received"])

    before = connections()
    burst = asyncio.run(scrape_at_once(ingest_url, 300))
    opened = connections() - before
    assert [r.status_code for r in burst] == [200] * 300
    assert all(value(r.text, "convo_bridge_redis_up") == 1 for r in burst)
    assert all("convo_bridge_queue_depth{" in r.text for r in burst)
    # one pipeline on the store's client, one RQ registry read: not one per scrape
    assert opened <= 4, opened


def test_the_gauges_leave_with_redis_and_come_back_with_it(
    make_settings: Callable[..., Settings],
    redis_server: RedisServer,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("bridge.app.QUEUE_SNAPSHOT_S", 0.0)
    with serve_app_in_thread(build_app(make_settings())) as url:
        assert value(httpx.get(f"{url}/metrics").text, "convo_bridge_redis_up") == 1
        redis_server.stop()
        try:
            away = httpx.get(f"{url}/metrics", timeout=30)
        finally:
            redis_server.start()
        back = wait_until(
            lambda: (
                (t := httpx.get(f"{url}/metrics").text)
                and value(t, "convo_bridge_redis_up") == 1
                and t
            )
        )
    assert away.status_code == 200
    assert value(away.text, "convo_bridge_redis_up") == 0
    assert "convo_bridge_queue_depth" not in away.text
    assert "convo_bridge_queue_depth{" in back
