"""Redis memory per queued intent, per dedup key and per delivered conversation.

    .venv/bin/python benchmarks/redis_memory.py [--n 10000]

Queues `n` one-field intents on `n` conversations through the ingest's own accept script,
then delivers them with a worker engine against an in-process sandbox, reading Redis's
`used_memory` at each step and `MEMORY USAGE` of single keys. Prints bytes per item and which
keys expire when.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bridge.changes import payloads
from bridge.config import load_settings
from bridge.intents import parse_intent
from bridge.local.redis_server import RedisServer
from bridge.store import Routed, Store, conversation_key
from tests.servers import serve_app_in_thread
from workers.worker import Engine


def used(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


async def accept_all(url: str, n: int) -> None:
    store = Store(url)
    now = int(time.time() * 1000)
    batch = []
    for i in range(n):
        intent = parse_intent(
            {
                "agent_id": "agent-1",
                "convo_id": f"convo-{i:06d}",
                "occurred_at": now,
                "set": {"title": f"Refund question {i}"},
            }
        )
        ck = conversation_key("agent-1", f"convo-{i:06d}")
        batch.append(
            Routed(
                "zendesk",
                f"evt_{i:010d}",
                payloads(intent, "ended_chat"),
                now,
                ck=ck,
            )
        )
        if len(batch) == 200:
            await store.accept(batch, dedup_ttl_s=86_400, coalesce_ms=0)
            batch = []
    if batch:
        await store.accept(batch, dedup_ttl_s=86_400, coalesce_ms=0)
    await store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    n = ap.parse_args().n
    from bridge.local import sandbox

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis")
        server.start()
        r = redis.Redis.from_url(server.url)
        try:
            base = used(r)
            asyncio.run(accept_all(server.url, n))
            queued = used(r)
            seen_key = next(r.scan_iter("cb:seen:*"))
            pending_key = next(r.scan_iter("cb:p:*"))
            seen_bytes = r.memory_usage(seen_key) or 0
            pending_bytes = r.memory_usage(pending_key) or 0
            with serve_app_in_thread(sandbox.build_app(auto_create=True)) as sandbox_url:
                cfg = Path(tmp) / "c.toml"
                cfg.write_text('[log]\nlevel = "WARNING"\n')
                settings = load_settings(
                    cfg,
                    {
                        "REDIS_URL": server.url,
                        "CONVOCORE_BASE_URL": sandbox_url,
                        "CONVOCORE_API_TOKEN": "t",
                    },
                )
                asyncio.run(Engine(settings).run(burst=True))
            delivered = used(r)
            hw_key = next(r.scan_iter("cb:hw:*"))
            hw_bytes = r.memory_usage(hw_key) or 0
            ttls = {k: r.ttl(next(r.scan_iter(f"cb:{k}:*"))) for k in ("seen", "hw")}
        finally:
            r.close()
            server.stop()
    print(f"{n:,} intents, one field each, on {n:,} conversations")
    print(f"  queued (pending + due + dedup key)   {(queued - base) / n:6.0f} B per intent")
    print(
        f"    of which the dedup key cb:seen:*   {seen_bytes:6.0f} B, expires after dedup_window_s (TTL {ttls['seen']} s)"
    )
    print(f"    and the pending hash cb:p:*        {pending_bytes:6.0f} B, deleted when delivered")
    print(
        f"  after delivery (dedup + high-water)  {(delivered - base) / n:6.0f} B per conversation"
    )
    print(
        f"    of which cb:hw:* (applied entries) {hw_bytes:6.0f} B, expires 30 days after the last PATCH (TTL {ttls['hw']} s)"
    )


if __name__ == "__main__":
    main()
