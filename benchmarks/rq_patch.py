"""The job of bench.py's RQ comparison row: one intent is one RQ job is one PATCH, run by
`rq worker -w rq.SimpleWorker` (no per-conversation order, no coalescing, no newest-wins:
what one RQ job per webhook gives)."""

from __future__ import annotations

import httpx

_client: httpx.Client | None = None  # one keep-alive connection per worker process


def patch(base_url: str, convo_id: str, fields: dict[str, object]) -> int:
    global _client
    if _client is None:
        _client = httpx.Client(base_url=base_url, timeout=10)
    answer = _client.patch(f"/agents/bench/convos/{convo_id}", json={"conversation": fields})
    answer.raise_for_status()
    return answer.status_code
