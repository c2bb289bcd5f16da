"""The RQ jobs of the `convo-bridge` queue: replays of dead letters through newest-wins.

Any RQ worker on the queue can run them (ours runs them beside delivery, see
workers/rq_worker.py): they take Redis from the job's own connection and run the store's
replay script, the same one `dlq replay` runs.

  replay_dead_letter(id)     what a dead letter's failed job calls: `rq requeue <id>` /
                             `rq requeue --all` replay it; still unroutable, it fails again
                             (back in the FailedJobRegistry, saying so)
  replay_dead_letters(ids)   a large replay (`dlq replay --all`, the admin page's Replay all,
                             a link that releases a big waiting dead letter), in chunks;
                             enqueue_replay() queues it and returns at once with the job
  link()                     `links set`: what waited for the link is replayed at once, or in
                             a job when it holds more than LARGE_REPLAY changes
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, get_current_job
from rq.job import Job

from bridge.errors import StoreUnavailable
from bridge.store import keys
from bridge.store.keys import PREFIX, RQ_QUEUE, conversation_key, ext_key
from bridge.store.scripts import source

if TYPE_CHECKING:
    from bridge.store.client import Store

CHUNK = 500
LARGE_REPLAY = 500  # changes: a waiting dead letter larger than this is replayed in a job
BULK_TIMEOUT_S = 3600
DEFAULT_COALESCE_MS = 500


class StillUnroutable(Exception):
    """The dead letter's events still name no linked conversation."""


def _connection() -> Redis:
    job = get_current_job()
    if job is not None:
        return job.connection
    return Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


def _coalesce_ms() -> int:
    """The configured coalesce window when the config can be read here, else the default
    (it only spaces a replayed conversation's PATCH from its previous one)."""
    try:
        from bridge.config import load_settings

        return load_settings(None).delivery.coalesce_ms
    except Exception:
        return DEFAULT_COALESCE_MS


def replay(conn: Redis, ids: Sequence[str], coalesce_ms: int, prefix: str = PREFIX) -> list[str]:
    """The store's replay script (lua/replay.lua), synchronously: one answer per id."""
    if not ids:
        return []
    script = conn.register_script(source("replay"))
    answers = script(args=[prefix, int(time.time() * 1000), coalesce_ms, *ids])
    return [a.decode() if isinstance(a, bytes) else str(a) for a in answers]


def replay_dead_letter(dl_id: str) -> str:
    """A requeued dead letter: merge it back (newer values still win). 'replayed', or
    'missing' when it was replayed or purged meanwhile."""
    conn = _connection()
    [outcome] = replay(conn, [dl_id], _coalesce_ms())
    if outcome == "unroutable":
        # RQ records this message as the failure rq-dashboard shows: the dead letter's own
        # text (its events and attempts), as when it was first mirrored
        raise StillUnroutable(
            f"dead letter {dl_id} is still unroutable: set its link with "
            "`convo-bridge links set SOURCE EXTERNAL_ID AGENT_ID CONVO_ID` (that replays it)\n"
            + _failure_text(conn, dl_id)
        )
    return outcome


def _failure_text(conn: Redis, dl_id: str) -> str:
    from bridge.store.rq_mirror import failure_text  # it imports this module's neighbours

    def text(raw: bytes | str) -> str:
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw

    rec = {text(k): text(v) for k, v in conn.hgetall(keys.key(PREFIX, "dl", dl_id)).items()}
    entries = {text(k): text(v) for k, v in conn.hgetall(keys.key(PREFIX, "dle", dl_id)).items()}
    attempts = [text(a) for a in conn.lrange(keys.key(PREFIX, "dla", dl_id), 0, -1)]
    return failure_text(dl_id, rec, entries, attempts)


def replay_dead_letters(
    ids: Sequence[str] | None = None, coalesce_ms: int = DEFAULT_COALESCE_MS
) -> dict[str, int]:
    """Replay `ids`, or every dead letter when None, CHUNK at a time. Counts per outcome."""
    conn = _connection()
    if ids is None:  # every dead letter there is when the job runs
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in conn.zrange(_dlq(), 0, -1)]
    counts: dict[str, int] = {}
    for start in range(0, len(ids), CHUNK):
        for outcome in replay(conn, ids[start : start + CHUNK], coalesce_ms):
            counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _dlq() -> str:
    return keys.key(PREFIX, "dlq")


def enqueue_replay(conn: Redis, ids: Sequence[str] | None, coalesce_ms: int, what: str) -> Job:
    """Queue a large replay on the convo-bridge queue; returns its job at once."""
    queue = Queue(RQ_QUEUE, connection=conn)
    return queue.enqueue(
        "bridge.store.rq_jobs.replay_dead_letters",
        kwargs={"ids": list(ids) if ids is not None else None, "coalesce_ms": coalesce_ms},
        job_timeout=BULK_TIMEOUT_S,
        description=f"replay {what}",
        result_ttl=86_400,
    )


async def link(
    store: Store, source: str, external_id: str, agent_id: str, convo_id: str, *, coalesce_ms: int
) -> str:
    """Set a link. What waited for it is replayed in the same script ('replayed'), or, when
    it holds more than LARGE_REPLAY changes, by an RQ job ('queued <job id>'); 'linked' when
    nothing waited."""
    try:
        waiting = await store.redis.get(store.key("ux", source, ext_key(external_id)))
        large = waiting is not None and (
            await store.redis.hlen(store.key("dle", waiting)) > LARGE_REPLAY
        )
        if not large:
            return await store.link(
                source, external_id, agent_id, convo_id, coalesce_ms=coalesce_ms
            )
        ck = conversation_key(agent_id, convo_id)
        await store.redis.hset(store.key("links", source), external_id, ck)
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"Redis: {type(exc).__name__}") from exc
    job = await asyncio.to_thread(
        _enqueue_at, store.url, [waiting], coalesce_ms, f"what waited for {source} {external_id}"
    )
    return f"queued {job.id}"


def _enqueue_at(url: str, ids: Sequence[str], coalesce_ms: int, what: str) -> Job:
    conn = Redis.from_url(url, socket_timeout=5)
    try:
        return enqueue_replay(conn, ids, coalesce_ms, what)
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"Redis: {type(exc).__name__}") from exc
    finally:
        conn.close()
