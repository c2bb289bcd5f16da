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

import functools
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
FUTURE_EVENTS = Counter(
    "convo_bridge_future_events",
    "Accepted events whose occurred_at was later than receipt + max_clock_skew_s, by source:"
    " counted as happening when received (the sender's clock is wrong).",
    ["source"],
)
# What only a worker does: exported on a worker's own port, never by serve (where these would
# read 0 forever, and a dashboard summing them would be misled by a process that never PATCHes).
WORKER_REGISTRY = CollectorRegistry()
PATCHES = Counter(
    "convo_bridge_patches",
    "PATCH attempts to Convocore, by outcome: the HTTP status, or no_answer.",
    ["status"],
    registry=WORKER_REGISTRY,
)
ATTEMPT_SECONDS = Histogram(
    "convo_bridge_patch_attempt_seconds",
    "Duration of one delivery attempt (read if needed, then PATCH).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=WORKER_REGISTRY,
)
WEBHOOK_TO_PATCH_SECONDS = Histogram(
    "convo_bridge_webhook_to_patch_seconds",
    "From the webhook's receipt to Convocore accepting the PATCH that carried it.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
    registry=WORKER_REGISTRY,
)
CONNECTIONS_CLOSED = Counter(
    "convo_bridge_connections_closed",
    "Connections serve closed before reading a request: connection_limit (the per-process "
    "bound was reached), head_timeout, headers_too_large.",
    ["reason"],
)
UNKNOWN_SOURCE = "_unknown"  # requests to a source not in the config share one label


@functools.cache
def child(metric: Counter, *labels: str) -> Counter:
    """`metric.labels(*labels)`, looked up once: labels() checks and locks on every call, a
    few µs per request. For label values from a bounded set (config names, statuses)."""
    return metric.labels(*labels)


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
        if r.accounts:
            per_account = GaugeMetricFamily(
                "convo_bridge_account_circuit_open",
                "1 while a [convocore.accounts] account's own circuit breaker holds its "
                "PATCHes back (open or probing).",
                labels=["account", label],
            )
            for name, circuit in sorted(r.accounts.items()):
                per_account.add_metric([name, scope], 0 if circuit.state == "closed" else 1)
            yield per_account
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
        if r.delivery_paused is not None:
            paused = GaugeMetricFamily(
                "convo_bridge_delivery_paused",
                "1 while workers are suspended (`rq suspend`) and take no work.",
                labels=[label],
            )
            paused.add_metric([scope], 1 if r.delivery_paused else 0)
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
    """A process-wide registry (the default one, or the worker's), inside another registry."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Any]:
        yield from self.registry.collect()


def serve_worker_metrics(port: int, host: str = "127.0.0.1") -> None:
    """A worker's own /metrics on `port`, from a background thread: the process's metrics
    and the worker's PATCH counters and latencies."""
    registry = CollectorRegistry()
    registry.register(_Default())
    registry.register(_Default(WORKER_REGISTRY))
    start_http_server(port, addr=host, registry=registry)
