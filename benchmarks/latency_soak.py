"""Webhook → PATCH latency under a steady load, minute by minute. Not part of the test suite.

    .venv/bin/python benchmarks/latency_soak.py [--minutes 6] [--rate 150] [--convos 3000]

Starts the bench rig (its own Redis with AOF everysec, sandbox, one `serve`) and two
`worker` processes, sends signed events at `--rate` per second, event i to conversation
i mod `--convos`, and prints, for each minute of sending, p50 and p99 of the time from
sending an event to the PATCH carrying it reaching the sandbox. A PATCH that carries
several coalesced events counts once, for the newest event it carries (the one whose value
it sends).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from benchmarks.bench import Rig
from benchmarks.redis_cost import send_steady


def carried(patch: dict[str, Any]) -> int:
    """The newest event a PATCH carries: its messagesNum is that event's number."""
    return int(patch["body"]["conversation"]["messagesNum"])


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * share) - 1)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--rate", type=float, default=150.0, help="events per second")
    ap.add_argument("--convos", type=int, default=3000)
    ap.add_argument("--log-level", default="INFO", help="serve/worker log level")
    args = ap.parse_args(argv)
    count = int(args.rate * args.minutes * 60)
    per_minute = int(args.rate * 60)
    sent: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        rig = Rig(Path(tmp), args.log_level)
        rig.start()
        try:
            rig.reset()
            rig.start_workers(2)
            time.sleep(2)
            gc.collect()
            gc.freeze()  # the sender's collector pauses would count as the bridge's latency
            started = time.time()
            asyncio.run(
                send_steady(rig.serve_url, args.rate, count, lambda i: f"s{i % args.convos}", sent)
            )
            took = time.time() - started
            newest = set(range(max(0, count - args.convos), count))  # each conversation's last
            deadline = time.time() + 60
            log: list[dict[str, Any]] = []
            while time.time() < deadline:
                log = httpx.get(f"{rig.sandbox_url}/_sandbox/log", timeout=60).json()
                if newest <= {carried(p) for p in log if p["status"] == 200}:
                    break
                time.sleep(0.5)
            rig.stop_workers()
        finally:
            rig.stop()
    minutes: dict[int, list[float]] = {}
    for p in log:
        if p["status"] == 200:
            i = carried(p)
            ms = (float(p["received_at"]) - sent[f"e{i}"]) * 1000
            minutes.setdefault(i // per_minute, []).append(ms)
    print(
        f"{count:,} events at {args.rate:g}/s over {args.convos:,} conversations, "
        f"1 serve + 2 workers, sent in {took:.0f} s"
    )
    print("minute  PATCHes  p50 ms  p99 ms  max ms")
    for minute in sorted(minutes):
        lat = minutes[minute]
        print(
            f"{minute + 1:>6}  {len(lat):>7}  {statistics.median(lat):>6.1f}  "
            f"{percentile(lat, 0.99):>6.1f}  {max(lat):>6.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
