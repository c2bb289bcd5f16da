"""The delivery workers RQ's registry lists on the convo-bridge queue (what `rq info` and
rq-dashboard show): the `workers_alive` figure of every status report."""

from __future__ import annotations

from rq import Queue, Worker

from bridge.store.connect import sync_client
from bridge.store.keys import RQ_QUEUE


def live_workers(redis_url: str) -> int:
    """Workers of the convo-bridge queue with a current RQ registration (other RQ workers
    on the same Redis are not ours to count)."""
    conn = sync_client(redis_url, socket_timeout=5)
    try:
        return len(Worker.all(queue=Queue(RQ_QUEUE, connection=conn)))
    finally:
        conn.close()
