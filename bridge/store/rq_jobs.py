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
import functools
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redis import Redis
from redis.exceptions import NoScriptError
from rq import Queue, get_current_job
from rq.job import Job

from bridge.config import DEFAULT_REDIS_URL, RedisSettings, Settings
from bridge.errors import StoreUnavailable
from bridge.store import keys
from bridge.store.connect import store_errors, sync_client, sync_store_client
from bridge.store.keys import RQ_QUEUE, on_cluster, prefix_for
from bridge.store.replication import add_waits, check_waits
from bridge.store.scripts import script_keys, source
from bridge.store.shards import Shards, shards_for

if TYPE_CHECKING:
    from bridge.store.client import Store

CHUNK = 500
LARGE_REPLAY = 500  # changes: a waiting dead letter larger than this is replayed in a job
BULK_TIMEOUT_S = 3600
DEFAULT_COALESCE_MS = 500


class StillUnroutable(Exception):
    """The dead letter's events still name no linked conversation."""


@dataclass(frozen=True, slots=True)
class JobSettings:
    """What a replay job needs of the configuration."""

    coalesce_ms: int = DEFAULT_COALESCE_MS
    durability: RedisSettings = field(default_factory=RedisSettings)
    store_url: str = ""  # the store's Redis, where the replay script runs ("": unknown)
    rq_url: str = ""  # RQ's, when not the store's

    @property
    def shards(self) -> Shards:
        return shards_for(self.store_url, self.durability)

    def prefix_of(self, dl_id: str) -> str:
        """The prefix of the shard holding dead letter `dl_id`."""
        return self.shards.dead_letter_prefix(dl_id)


_configured: JobSettings | None = None


def configure(
    coalesce_ms: int, durability: RedisSettings, store_url: str = "", rq_url: str = ""
) -> None:
    """The settings of this process (our worker calls it), for the jobs it runs."""
    global _configured
    _configured = JobSettings(coalesce_ms, durability, store_url, rq_url)


def _settings() -> JobSettings:
    """This process's settings; in another RQ worker, its environment's config when it can
    be read, else the defaults (coalescing only spaces a replayed PATCH from the last)."""
    if _configured is not None:
        return _configured
    try:
        from bridge.config import load_settings

        settings = load_settings(None)
        url = settings.redis_url if os.environ.get("REDIS_URL") else ""
        return JobSettings(settings.delivery.coalesce_ms, settings.redis, url, settings.rq_url)
    except Exception:
        return JobSettings()


def _connection(prefix: str = "") -> Redis:
    """The store's Redis, where the replay script runs: this process's REDIS_URL (our
    worker's, or the environment's), else the job's own connection (RQ on the store's Redis,
    an RQ worker started with only `-u`). On Cluster, the primary of shard `prefix`'s slot,
    asked now."""
    url = _settings().store_url
    if on_cluster(url):
        return sync_store_client(url, (prefix or prefix_for(url)) + "due")
    if url:
        return _client(url)
    job = get_current_job()
    if job is not None:
        return job.connection
    return _client(DEFAULT_REDIS_URL)


@functools.cache
def _client(url: str) -> Redis:
    return sync_client(url)


def replay(
    conn: Redis,
    ids: Sequence[str],
    coalesce_ms: int,
    prefix: str,
    durability: RedisSettings | None = None,
    cluster: bool = False,
) -> list[str]:
    """The store's replay script (lua/replay.lua), synchronously: one answer per id; under
    replica durability only once the replicas hold it (else NotReplicated: the job fails
    and can be requeued)."""
    if not ids:
        return []
    durability = durability or RedisSettings()
    script = conn.register_script(source("replay"))
    args: list[str | int] = [prefix, coalesce_ms, *ids]
    declared = script_keys(prefix, cluster)
    for _ in range(2):
        with conn.pipeline(transaction=False) as pipe:
            pipe.evalsha(script.sha, len(declared), *declared, *args)
            add_waits(pipe, durability)
            answers, *waits = pipe.execute(raise_on_error=False)
        if isinstance(answers, NoScriptError):  # a new or restarted primary
            conn.script_load(script.script)
            continue
        if isinstance(answers, Exception):
            raise answers
        check_waits(waits, durability, "the replay job's Redis")
        return [a.decode() if isinstance(a, bytes) else str(a) for a in answers]
    raise StoreUnavailable("Redis: the replay script would not load")


def replay_dead_letter(dl_id: str) -> str:
    """A requeued dead letter: merge it back (newer values still win). 'replayed', or
    'missing' when it was replayed or purged meanwhile."""
    settings = _settings()
    prefix = settings.prefix_of(dl_id)
    conn: Redis | None = None  # sharded, the replay runs on a Store: asked for only if needed
    if settings.shards.sharded:
        outcome = _replay_sharded(settings, [dl_id])[dl_id]
    else:
        conn = _connection(prefix)
        [outcome] = replay(
            conn,
            [dl_id],
            settings.coalesce_ms,
            prefix,
            settings.durability,
            settings.shards.cluster,
        )
    if outcome == "unroutable":
        # RQ records this message as the failure rq-dashboard shows: the dead letter's own
        # text (its events and attempts), as when it was first mirrored
        raise StillUnroutable(
            f"dead letter {dl_id} is still unroutable: set its link with "
            "`convo-bridge links set SOURCE EXTERNAL_ID AGENT_ID CONVO_ID` (that replays it)\n"
            + _failure_text(conn or _connection(prefix), dl_id, prefix)
        )
    return outcome


def _replay_sharded(settings: JobSettings, ids: Sequence[str] | None) -> dict[str, str]:
    """A sharded store's replay of `ids` (None: every dead letter), CHUNK at a time (a
    letter may wait in another shard than its conversation's: Store.replay moves it), on a
    Store of the job's own (jobs run in a thread of their own)."""
    from bridge.store.client import Store

    async def run() -> dict[str, str]:
        store = Store(
            settings.store_url,
            durability=settings.durability,
            rq_url=settings.rq_url or settings.store_url,
        )
        try:
            todo = list(ids) if ids is not None else await store.dead_letter_ids(10**9)
            out: dict[str, str] = {}
            for start in range(0, len(todo), CHUNK):
                chunk = todo[start : start + CHUNK]
                out.update(await store.replay(chunk, coalesce_ms=settings.coalesce_ms))
            return out
        finally:
            await store.close()

    return asyncio.run(run())


def _failure_text(conn: Redis, dl_id: str, prefix: str) -> str:
    from bridge.store.rq_mirror import failure_text  # it imports this module's neighbours

    def text(raw: bytes | str) -> str:
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw

    rec = {text(k): text(v) for k, v in conn.hgetall(keys.key(prefix, "dl", dl_id)).items()}
    entries = {text(k): text(v) for k, v in conn.hgetall(keys.key(prefix, "dle", dl_id)).items()}
    attempts = [text(a) for a in conn.lrange(keys.key(prefix, "dla", dl_id), 0, -1)]
    return failure_text(dl_id, rec, entries, attempts)


def replay_dead_letters(
    ids: Sequence[str] | None = None,
    coalesce_ms: int = DEFAULT_COALESCE_MS,
    replicas: int = 0,
    replica_timeout_ms: int = 500,
) -> dict[str, int]:
    """Replay `ids`, or every dead letter when None, CHUNK at a time. Counts per outcome.
    `replicas` > 0: each chunk waits for that many replicas (durability = "replica")."""
    settings = _settings()
    if settings.shards.sharded:
        return dict(Counter(_replay_sharded(settings, ids).values()))
    counts: Counter[str] = Counter()
    conn = _connection()
    durability = (
        RedisSettings("replica", replicas, replica_timeout_ms) if replicas else RedisSettings()
    )
    prefix = settings.shards.prefixes[0]
    if ids is None:  # every dead letter there is when the job runs
        dlq = keys.key(prefix, "dlq")
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in conn.zrange(dlq, 0, -1)]
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        counts.update(replay(conn, chunk, coalesce_ms, prefix, durability, settings.shards.cluster))
    return dict(counts)


def enqueue_replay(
    conn: Redis,
    ids: Sequence[str] | None,
    coalesce_ms: int,
    what: str,
    durability: RedisSettings | None = None,
) -> Job:
    """Queue a large replay on the convo-bridge queue; returns its job at once (under
    replica durability once the replicas hold the job)."""
    durability = durability or RedisSettings()
    replicas = durability.replicas if durability.durability == "replica" else 0
    queue = Queue(RQ_QUEUE, connection=conn)
    job = queue.enqueue(
        "bridge.store.rq_jobs.replay_dead_letters",
        kwargs={
            "ids": list(ids) if ids is not None else None,
            "coalesce_ms": coalesce_ms,
            "replicas": replicas,
            "replica_timeout_ms": durability.replica_timeout_ms,
        },
        job_timeout=BULK_TIMEOUT_S,
        description=f"replay {what}",
        result_ttl=86_400,
    )
    if replicas:  # a blocking client used by one thread gets its one connection back
        with conn.pipeline(transaction=False) as pipe:
            add_waits(pipe, durability)
            check_waits(pipe.execute(raise_on_error=False), durability, "RQ's Redis")
    return job


async def link(
    store: Store, source: str, external_id: str, agent_id: str, convo_id: str, *, coalesce_ms: int
) -> str:
    """Set a link. What waited for it is replayed in the same script ('replayed'), or, when
    it holds more than LARGE_REPLAY changes, by an RQ job ('queued <job id>'); 'linked' when
    nothing waited."""
    waiting, changes = await store.waiting_for_link(source, external_id)
    if waiting is None or changes <= LARGE_REPLAY:
        return await store.link(source, external_id, agent_id, convo_id, coalesce_ms=coalesce_ms)
    await store.set_link_only(source, external_id, agent_id, convo_id)
    job = await asyncio.to_thread(
        enqueue_replay_at,
        store.rq_url,
        [waiting],
        coalesce_ms,
        f"what waited for {source} {external_id}",
        store.durability if store.rq_url == store.url else RedisSettings(),
    )
    return f"queued {job.id}"


def rq_durability(settings: Settings) -> RedisSettings:
    """What an RQ write waits for: the store's replicas when RQ shares its Redis; on a Redis
    of its own (RQ_REDIS_URL), nothing (a lost replay job leaves the dead letters there)."""
    return settings.redis if settings.rq_url == settings.redis_url else RedisSettings()


def enqueue_replay_at(
    url: str, ids: Sequence[str] | None, coalesce_ms: int, what: str, durability: RedisSettings
) -> Job:
    """enqueue_replay on a client of its own (blocking: run it in a thread from async code);
    StoreUnavailable when Redis does not answer."""
    conn = sync_client(url, socket_timeout=5)
    try:
        with store_errors(url):
            return enqueue_replay(conn, ids, coalesce_ms, what, durability)
    finally:
        conn.close()
