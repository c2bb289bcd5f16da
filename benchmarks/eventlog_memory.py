"""Redis memory per event-log entry, with bodies kept and without.

    .venv/bin/python benchmarks/eventlog_memory.py [--n 20000]

Writes `n` webhook requests (a signed Standard Webhooks request of ~180 body bytes, its
headers) through the accept script with their event-log rows, then `n` PATCH entries through
the log script, reading Redis's `used_memory` before and after. Prints bytes per entry.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bridge.changes import payloads
from bridge.config import EventLogSettings
from bridge.eventlog import log_bounds, patch_row, webhook_row
from bridge.intents import parse_intent
from bridge.local.redis_server import RedisServer
from bridge.store import Routed, Store, conversation_key
from bridge.store.connect import sync_client
from tests.signing import standard_headers

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def fill(url: str, n: int, settings: EventLogSettings, run: str) -> None:
    store = Store(url)
    now = int(time.time() * 1000)
    bounds = log_bounds(settings)
    for i in range(n):
        raw = {
            "type": "conversation.update",
            "agent_id": "agent-1",
            "convo_id": f"convo-{i:06d}",
            "occurred_at": now,
            "set": {"title": f"Refund question {i}", "state": "requested_chat"},
        }
        body = orjson.dumps(raw)
        headers = {**standard_headers(SECRET, body), "user-agent": "Svix-Webhooks/1.24"}
        ck = conversation_key("agent-1", f"convo-{i:06d}")
        event_id = f"{run}_{i:010d}"
        routed = Routed("demo", event_id, payloads(parse_intent(raw), "ended_chat"), now, ck=ck)
        row = webhook_row(
            settings,
            source="demo",
            status=202,
            headers=headers,
            body=body,
            routed=1,
            event_ids=[event_id],
            conversations=[ck],
        )
        await store.accept([routed], dedup_ttl_s=86_400, coalesce_ms=0, log=row, log_bounds=bounds)
    await store.close()


async def fill_patches(url: str, n: int, settings: EventLogSettings) -> None:
    store = Store(url)
    sent = orjson.dumps({"conversation": {"title": "Refund question 1", "state": "requested_chat"}})
    rows = [
        patch_row(
            settings,
            ck=conversation_key("agent-1", f"convo-{i:06d}"),
            verdict="applied",
            status="200",
            body=sent,
            answer='{"success": true}',
            duration_ms=3.2,
            attempt=1,
            sources=["demo"],
            event_ids=[f"evt_{i:010d}"],
        )
        for i in range(n)
    ]
    for at in range(0, n, 200):
        await store.log(rows[at : at + 200], log_bounds(settings))
    await store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    n = ap.parse_args().n
    keep = EventLogSettings(max_events=10 * n)
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis")
        server.start()
        r = sync_client(server.url)
        try:
            figures = []
            for label, settings in (
                ("webhook, body kept", keep),
                ("webhook, bodies = false", replace(keep, bodies=False)),
            ):
                log_before = r.memory_usage("cb:events", samples=0) or 0
                asyncio.run(fill(server.url, n, settings, f"run{len(figures)}"))
                log_after = r.memory_usage("cb:events", samples=0) or 0
                figures.append((label, (log_after - log_before) / n))
            for label, settings in (
                ("PATCH, body kept", keep),
                ("PATCH, bodies = false", replace(keep, bodies=False)),
            ):
                log_before = r.memory_usage("cb:events", samples=0) or 0
                asyncio.run(fill_patches(server.url, n, settings))
                log_after = r.memory_usage("cb:events", samples=0) or 0
                figures.append((label, (log_after - log_before) / n))
        finally:
            r.close()
            server.stop()
    print(f"{n:,} entries of each kind, cb:events (MEMORY USAGE, all samples)")
    for label, per_entry in figures:
        print(f"  {label:<26} {per_entry:6.0f} B per entry")


if __name__ == "__main__":
    main()
