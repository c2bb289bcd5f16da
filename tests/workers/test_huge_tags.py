"""A conversation with tens of thousands of tag changes: composed in linear time, sent once,
and no stall of the worker's event loop beyond 50 ms for the other conversations."""

import asyncio
import time

import httpx
import orjson

from tests.conftest import SECRET, convo, wait_until
from tests.signing import standard_headers

T0 = int(time.time() * 1000) - 60_000
TAGS = 30_000


async def loop_busy(stop_after_s: float) -> float:
    """The longest the event loop it runs on spent working on something else between two of
    its 2 ms wake-ups, in CPU seconds of the loop's thread: what the bridge's own code blocks
    for, not what the shared machine's scheduler adds."""
    worst, end = 0.0, time.monotonic() + stop_after_s
    while time.monotonic() < end:
        before = time.thread_time()
        await asyncio.sleep(0.002)
        worst = max(worst, time.thread_time() - before)
    return worst


def test_thirty_thousand_tag_adds_go_out_once_without_stalling_the_worker(
    ingest_url, sandbox_url, start_worker
):
    worker = start_worker()
    tags = [f"t{i:05d}" for i in range(TAGS)]
    body = orjson.dumps(
        {"agent_id": "a", "convo_id": "big", "occurred_at": T0, "tags": {"add": tags}}
    )
    assert worker.loop is not None
    lag = asyncio.run_coroutine_threadsafe(loop_busy(6.0), worker.loop)
    time.sleep(0.2)
    answer = httpx.post(
        f"{ingest_url}/webhooks/demo", content=body, headers=standard_headers(SECRET, body)
    )
    assert answer.status_code == 202
    data = wait_until(lambda: (c := convo(sandbox_url, "a", "big")) and c.get("tags") and c)
    assert sorted(data["tags"]) == tags
    worst = lag.result(timeout=15)
    assert worst < 0.05, f"event loop stalled {worst * 1000:.0f} ms"
    assert len(httpx.get(f"{sandbox_url}/_sandbox/log").json()) == 1
