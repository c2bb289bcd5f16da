"""The page's charts: per minute over the last hour, per 10 minutes over the last day.

The figures are counted in Redis by the event-log scripts (one `m:<minute>` hash per minute,
keys.py), so every `serve` replica draws the same charts. A slot adds up its minutes'
counts; the queue depth and dead letters are the last value seen (sampled whenever an entry
is logged, so they hold through quiet minutes); webhook →
PATCH p50 and p99 are read off the slot's latency buckets (the bucket's upper bound).
With `[eventlog] enabled = false` nothing is counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from bridge.store import Store
from bridge.store.keys import LATENCY_BUCKETS_MS

RANGES = {"1h": (60, 1), "24h": (144, 10)}  # name -> (slots, minutes per slot)


@dataclass(slots=True)
class Slot:
    start_ms: int
    webhooks: dict[str, int] = field(default_factory=dict)  # "source verdict" -> count
    patches: dict[str, int] = field(default_factory=dict)  # verdict -> count
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    queue_depth: int | None = None
    dead_letters: int | None = None

    def percentile(self, q: float) -> float | None:
        total = sum(self.latency)
        if not total:
            return None
        seen = 0
        for i, n in enumerate(self.latency):
            seen += n
            if seen >= q * total:
                return float(LATENCY_BUCKETS_MS[i]) if i < len(LATENCY_BUCKETS_MS) else None
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "t": self.start_ms,
            "webhooks": self.webhooks,
            "patches": self.patches,
            "p50_ms": self.percentile(0.5),
            "p99_ms": self.percentile(0.99),
            "queue_depth": self.queue_depth,
            "dead_letters": self.dead_letters,
        }


def _add(slot: Slot, figures: dict[str, str]) -> None:
    for name, value in figures.items():
        kind, _, rest = name.partition(":")
        if kind == "w":
            verdict, _, sources = rest.partition(":")
            try:
                label = ",".join(orjson.loads(sources)) + " " + verdict
            except orjson.JSONDecodeError:
                label = f"{sources} {verdict}"
            slot.webhooks[label] = slot.webhooks.get(label, 0) + int(value)
        elif kind == "p":
            slot.patches[rest] = slot.patches.get(rest, 0) + int(value)
        elif kind == "l" and rest.isdigit() and int(rest) < len(slot.latency):
            slot.latency[int(rest)] += int(value)
        elif name == "q":
            slot.queue_depth = int(value)
        elif name == "dl":
            slot.dead_letters = int(value)


async def series(store: Store, name: str, now: float | None = None) -> list[Slot]:
    """The slots of range `name` ("1h" or "24h"), oldest first."""
    slots, step = RANGES[name]
    if now is None:  # the minutes are Redis's (NOW in eventlog.lua), not this host's
        now = await store.clock_ms() / 1000
    last = int(now // 60)
    first = last - slots * step + 1
    first -= first % step if step > 1 else 0
    minutes = list(range(first, last + 1))
    figures = await store.minute_figures(minutes)
    out: list[Slot] = []
    for minute, found in zip(minutes, figures, strict=True):
        if not out or minute - out[-1].start_ms // 60_000 >= step:
            out.append(Slot(start_ms=minute * 60_000))
        _add(out[-1], found)
    depth, dead = None, None  # gauges hold until the next sample (taken whenever one is logged)
    for slot in out:
        depth = slot.queue_depth = depth if slot.queue_depth is None else slot.queue_depth
        dead = slot.dead_letters = dead if slot.dead_letters is None else slot.dead_letters
    return out
