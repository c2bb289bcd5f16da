"""The charts' figures live in Redis: counted per minute by the event-log scripts, read the
same by every serve replica, summed into 10-minute slots for the day view."""

import asyncio
import re
import time

import httpx

from bridge.app import build_app
from bridge.charts import series
from bridge.store import Store
from tests.conftest import SECRET, wait_until
from tests.servers import serve_app_in_thread
from tests.signing import signed

T0 = 1_764_000_000_000


def send(url, msg_id, secret=SECRET):
    body, headers = signed(
        secret,
        {"agent_id": "a", "convo_id": "c", "occurred_at": T0, "set": {"title": msg_id}},
        msg_id=msg_id,
    )
    return httpx.post(f"{url}/webhooks/demo", content=body, headers=headers).status_code


def read(url, name):
    async def go():
        store = Store(url)
        try:
            return await series(store, name)
        finally:
            await store.close()

    return asyncio.run(go())


def test_webhooks_patches_and_latency_are_counted_per_minute(ingest_url, redis_url, start_worker):
    assert send(ingest_url, "m1") == 202
    assert send(ingest_url, "m1") == 202  # duplicate
    assert send(ingest_url, "m2", secret="whsec_" + "A" * 32) == 401
    start_worker()
    wait_until(lambda: any(s.patches.get("applied") for s in read(redis_url, "1h")))
    hour = read(redis_url, "1h")
    assert len(hour) == 60 and hour[-1].start_ms // 60_000 == int(time.time() // 60)
    assert total(hour, "webhooks") == {"demo accepted": 1, "demo duplicate": 1, "demo refused": 1}
    assert total(hour, "patches") == {"applied": 1}
    patched = next(s for s in hour if s.patches)
    assert patched.percentile(0.5) is not None and patched.queue_depth == 0
    day = read(redis_url, "24h")
    assert len(day) in (144, 145) and total(day, "webhooks") == total(hour, "webhooks")


def total(slots, what):
    out = {}
    for slot in slots:
        for k, v in getattr(slot, what).items():
            out[k] = out.get(k, 0) + v
    return out


def test_every_replica_draws_the_same_figures(settings, ingest_url):
    send(ingest_url, "r1")
    with serve_app_in_thread(build_app(settings)) as other:
        pages = []
        for url in (ingest_url, other):
            client = httpx.Client(base_url=url)
            client.post("/admin/login", data={"token": "admin-token"})
            page = client.get("/admin/").text
            pages.append(re.search(r'id="chart-data">(.*?)</script>', page).group(1))
            client.close()
    assert pages[0] == pages[1] and "demo accepted" in pages[0]
