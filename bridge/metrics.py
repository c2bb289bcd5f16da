"""Prometheus metrics, from the prometheus-client library.

Each process counts what it does itself: `serve` its requests and intents, a `worker` its
PATCHes and their latencies. `serve` answers `GET /metrics`; a worker started with
`--metrics-port P` (or BRIDGE_METRICS_PORT) answers on that port. The queue figures are
global, read from Redis when `/metrics` is scraped, so any one `serve` reports them.

Several processes behind one endpoint (uvicorn or gunicorn with several workers, or
workers beside serve sharing a volume): set PROMETHEUS_MULTIPROC_DIR to an empty directory
before they start, and `/metrics` adds up every process writing there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from bridge.status import StatusReport

WEBHOOK_REQUESTS = Counter(
    "convo_bridge_webhook_requests",
    "Webhook requests answered, by source and HTTP status.",
    ["source", "status"],
)
INTENTS = Counter(
    "convo_bridge_intents",
    "Events received, by source and outcome: accepted, duplicate, ignored, unroutable.",
    ["source", "outcome"],
)
PATCHES = Counter(
    "convo_bridge_patches",
    "PATCH attempts to Convocore, by outcome: the HTTP status, or no_answer.",
    ["status"],
)
ATTEMPT_SECONDS = Histogram(
    "convo_bridge_patch_attempt_seconds",
    "Duration of one delivery attempt (read if needed, then PATCH).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WEBHOOK_TO_PATCH_SECONDS = Histogram(
    "convo_bridge_webhook_to_patch_seconds",
    "From the webhook's receipt to Convocore accepting the PATCH that carried it.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
UNKNOWN_SOURCE = "_unknown"  # requests to a source not in the config share one label


SCOPE = ("scope", "cluster")  # the label on every gauge read from Redis (below)
ALWAYS_REPORTED_REASONS = ("max_attempts", "unroutable")  # at 0 when there are none


class QueueCollector(Collector):
    """The queue as `convo-bridge status` sees it, from a snapshot (bridge/snapshot.py).

    These gauges are read from the one Redis, so every `serve` replica reports the same
    figures: each carries `scope="cluster"`, and is aggregated across replicas with `max`,
    never `sum` (`max by (__name__, reason) ({scope="cluster"})`, README, Metrics).
    """

    def __init__(self, report: StatusReport) -> None:
        self.report = report

    def collect(self) -> Iterator[GaugeMetricFamily]:
        r = self.report
        label, scope = SCOPE
        for name, value, doc in (
            (
                "queue_depth",
                r.queue_depth,
                "Conversations with work queued (waiting, scheduled or in flight).",
            ),
            ("conversations_waiting", r.conversations_waiting, "Conversations due now."),
            ("in_flight", r.in_flight, "Conversations a worker holds."),
            (
                "scheduled_retries",
                r.scheduled_retries,
                "Conversations waiting for a retry or coalescing delay.",
            ),
            (
                "circuit_open",
                0 if r.circuit.state == "closed" else 1,
                "1 while the circuit breaker holds PATCHes back (open or probing).",
            ),
        ):
            family = GaugeMetricFamily(f"convo_bridge_{name}", doc, labels=[label])
            family.add_metric([scope], value)
            yield family
        dead = GaugeMetricFamily(
            "convo_bridge_dead_letters", "Dead letters, by reason.", labels=["reason", label]
        )
        reasons = dict.fromkeys(ALWAYS_REPORTED_REASONS, 0) | r.dead_letters_by_reason
        for reason, n in sorted(reasons.items()):
            dead.add_metric([reason, scope], n)
        yield dead
        if r.workers_alive is not None:
            alive = GaugeMetricFamily(
                "convo_bridge_workers_alive", "Workers with a current heartbeat.", labels=[label]
            )
            alive.add_metric([scope], r.workers_alive)
            yield alive
        if r.paused is not None:
            paused = GaugeMetricFamily(
                "convo_bridge_delivery_paused",
                "1 while delivery is paused (`rq suspend` or the admin page's Pause).",
                labels=[label],
            )
            paused.add_metric([scope], int(r.paused))
            yield paused


class RedisUp(Collector):
    """Whether this process could read the queue from Redis for this scrape."""

    def __init__(self, up: bool) -> None:
        self.up = up

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "convo_bridge_redis_up",
            "1 when this process read the queue gauges from Redis; 0 while Redis is away "
            "(the scope=cluster gauges are then left out).",
            value=1 if self.up else 0,
        )


def render(queue: StatusReport | None, accept: str = "") -> tuple[bytes, str]:
    """The exposition of this process (or of all, in multiprocess mode) plus the queue, as
    OpenMetrics when the scraper's Accept asks for it, else Prometheus text."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Default())
    registry.register(RedisUp(queue is not None))
    if queue is not None:
        registry.register(QueueCollector(queue))
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type


class _Default(Collector):
    """The process's own default registry, inside a registry of one scrape."""

    def collect(self) -> Iterator[Any]:
        yield from REGISTRY.collect()


def serve_worker_metrics(port: int, host: str = "127.0.0.1") -> None:
    """A worker's own /metrics on `port`, from a background thread."""
    start_http_server(port, addr=host)
