"""Every dead letter is also a failed job in RQ's FailedJobRegistry of the `convo-bridge`
queue, so `rq info`, rq-dashboard and `rq requeue` see the set `dlq list` sees.

The job's id is the dead letter's id; it calls `bridge.store.rq_jobs.replay_dead_letter`, so
`rq requeue <id>` / `--all` replays through newest-wins (by our worker or any RQ worker).
Its failure text (the job's exc_info and the FAILED result rq-dashboard reads) holds the
reason, the conversation, the last status and answer, the events and attempts.

Who writes what, and why it cannot drift:
  dead.lua new_dead   appends the new id to `rqnew` in the script that makes the dead letter
  mirror_new()        (workers, every second) turns each id there into its failed job, in a
                      WATCH transaction on the dead letter and the job: a purge or replay that
                      lands meanwhile aborts it, so a job never outlives its dead letter
  dead.lua drop_dead  (replay, purge, link) deletes the failed job in the same script; a job
                      requeued or running is left to finish (it answers 'missing')
  reconcile()         (workers, at start and every few minutes) mirrors any dead letter
                      without a job: older ones, or one whose job was deleted in rq-dashboard
                      (deleting a failed job there does not drop data; `dlq purge` does)
Under [redis] durability = "replica" the mirror does not wait for replicas: the dead letter
and its `rqnew` entry do (dead.lua runs in settle), replication keeps order, so a failover
that loses a mirrored job loses the `rqnew` removal after it too and the job is made again.

RQ on its own Redis (RQ_REDIS_URL): no transaction spans two servers, and dead.lua cannot
reach RQ's keys, so the same rules are kept from here, in this order:
  mirror_one()        reads the dead letter, writes its job on RQ's Redis, then looks again:
                      a dead letter dropped meanwhile takes its job with it
  dead.lua drop_dead  lists the dropped id in `rqgone`; drop_gone() (workers, every second)
                      deletes its failed job (a requeued or running one is left to finish)
  reconcile()         also deletes failed jobs whose dead letter is gone (a worker that died
                      between the steps above)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from redis import Redis
from redis.exceptions import WatchError
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.results import Result

from bridge.changes import decode
from bridge.readable import attempt_line, change_line
from bridge.store import keys
from bridge.store.keys import PREFIX, RQ_QUEUE, split_key
from bridge.store.shards import Shards
from bridge.times import iso

REPLAY_FUNC = "bridge.store.rq_jobs.replay_dead_letter"
KEEP_S = 100 * 365 * 86_400  # dead letters stay until replayed or purged: so do their jobs
JOB_TIMEOUT_S = 600
BATCH = 200
SHOWN_EVENTS = 20
# dead.lua's ids, `-s<shard>` when sharded (RQ's own job ids are UUIDs)
DEAD_LETTER_ID = re.compile(r"\d+-\d+(-s\d+)?")


def _text(raw: Any) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def failure_text(
    dl_id: str, rec: dict[str, str], entries: dict[str, str], attempts: Sequence[str]
) -> str:
    """What rq-dashboard shows as the failed job's exc_info: why it is dead, its events
    (source, event id, what each changes), its attempts, and how to replay it. `entries` is
    the dead letter's `dle:` hash (change name -> entry)."""
    agent, convo = split_key(rec.get("ck", "")) if rec.get("ck") else ("", "")
    where = (
        f"{agent}/{convo}"
        if agent
        else f"{rec.get('source', '')}:{rec.get('external_id', '')} (no link yet)"
    )
    lines = [
        f"DeadLetter: {rec.get('reason', '?')}",
        f"conversation: {where}",
        f"last status: {rec.get('last_status') or '-'}",
        f"last answer: {rec.get('last_snippet') or '-'}",
        f"since: {iso(int(rec.get('created') or 0) or None)}",
        f"events: {len(entries)}",
    ]
    for name, raw in sorted(entries.items())[:SHOWN_EVENTS]:
        try:
            lines.append(f"  {change_line(decode(name, raw))}")
        except ValueError:  # not an entry this version can read
            continue
    if len(entries) > SHOWN_EVENTS:
        lines.append(f"  … {len(entries) - SHOWN_EVENTS} more: convo-bridge dlq show {dl_id}")
    lines.append(f"attempts: {len(attempts)}")
    for raw in attempts[-SHOWN_EVENTS:]:
        try:
            lines.append(f"  {attempt_line(orjson.loads(raw))}")
        except orjson.JSONDecodeError:
            continue
    lines.append(
        f"replay: rq requeue --queue {RQ_QUEUE} {dl_id}  (or convo-bridge dlq replay {dl_id})"
    )
    return "\n".join(lines)


def description(dl_id: str, rec: dict[str, str]) -> str:
    agent, convo = split_key(rec.get("ck", "")) if rec.get("ck") else ("", "")
    where = f"{agent}/{convo}" if agent else f"{rec.get('source', '')}:{rec.get('external_id', '')}"
    return f"dead letter {dl_id}: {rec.get('reason', '?')} {where} (requeue to replay)"


def _job(conn: Redis, dl_id: str, rec: dict[str, str]) -> Job:
    job = Job.create(
        REPLAY_FUNC,
        args=(dl_id,),
        connection=conn,
        id=dl_id,
        origin=RQ_QUEUE,
        status=JobStatus.FAILED,
        description=description(dl_id, rec),
        timeout=JOB_TIMEOUT_S,
        failure_ttl=KEEP_S,
    )
    created = datetime.fromtimestamp(int(rec.get("created", "0")) / 1000, UTC)
    job.created_at = job.enqueued_at = job.ended_at = created
    return job


def _add_failed(rq: Redis, pipe: Any, job: Job, text: str) -> None:
    """The failed job's writes, queued on `pipe` (a MULTI on RQ's Redis)."""
    FailedJobRegistry(RQ_QUEUE, connection=rq).add(job, ttl=KEEP_S, exc_string=text, pipeline=pipe)
    Result.create_failure(job, KEEP_S, exc_string=text, pipeline=pipe)
    pipe.sadd(Queue.redis_queues_keys, Queue(RQ_QUEUE, connection=rq).key)


def _read_dead_letter(
    conn: Any, dl_id: str, prefix: str
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    rec = {_text(k): _text(v) for k, v in conn.hgetall(keys.key(prefix, "dl", dl_id)).items()}
    entries = {_text(k): _text(v) for k, v in conn.hgetall(keys.key(prefix, "dle", dl_id)).items()}
    attempts = [_text(a) for a in conn.lrange(keys.key(prefix, "dla", dl_id), 0, -1)]
    return rec, entries, attempts


def mirror_one(conn: Redis, dl_id: str, prefix: str = PREFIX, rq: Redis | None = None) -> bool:
    """Make dead letter `dl_id`'s failed job unless it has one (or is gone). True if made.
    `rq`: RQ's Redis when it is not `conn`'s."""
    if rq is not None:
        return _mirror_apart(conn, rq, dl_id, prefix)
    dl_key = keys.key(prefix, "dl", dl_id)
    job_key = Job.key_for(dl_id)
    with conn.pipeline() as pipe:
        while True:
            try:
                pipe.watch(dl_key, job_key)  # type: ignore[no-untyped-call]
                if not pipe.exists(dl_key) or pipe.exists(job_key):
                    pipe.unwatch()
                    return False
                rec, entries, attempts = _read_dead_letter(pipe, dl_id, prefix)
                job = _job(conn, dl_id, rec)
                pipe.multi()
                _add_failed(conn, pipe, job, failure_text(dl_id, rec, entries, attempts))
                pipe.execute()
                return True
            except WatchError:
                continue


def _mirror_apart(conn: Redis, rq: Redis, dl_id: str, prefix: str) -> bool:
    """mirror_one with RQ on a Redis of its own: write, then look again (module docstring)."""
    if rq.exists(Job.key_for(dl_id)):
        return False
    rec, entries, attempts = _read_dead_letter(conn, dl_id, prefix)
    if not rec:
        return False
    job = _job(rq, dl_id, rec)
    with rq.pipeline() as pipe:
        _add_failed(rq, pipe, job, failure_text(dl_id, rec, entries, attempts))
        pipe.execute()
    if not conn.exists(keys.key(prefix, "dl", dl_id)):  # dropped meanwhile: so is its job
        drop_job(rq, dl_id)
        return False
    return True


def drop_job(rq: Redis, dl_id: str) -> None:
    """Delete a dropped dead letter's failed job from RQ's Redis, as dead.lua does when RQ
    shares the store's: a job requeued or running meanwhile is left to finish."""
    job_key = Job.key_for(dl_id)
    with rq.pipeline() as pipe:
        while True:
            try:
                pipe.watch(job_key)  # type: ignore[no-untyped-call]
                failed = _text(pipe.hget(job_key, "status") or b"") == JobStatus.FAILED.value
                pipe.multi()
                if failed:
                    pipe.delete(job_key, Result.get_key(dl_id))  # type: ignore[no-untyped-call]
                pipe.zrem(FailedJobRegistry(RQ_QUEUE, connection=rq).key, dl_id)
                pipe.execute()
                return
            except WatchError:
                continue


def mirror_new(conn: Redis, prefix: str = PREFIX, rq: Redis | None = None) -> int:
    """Mirror the dead letters made since the last call (dead.lua lists them in `rqnew`)."""
    pending = keys.key(prefix, "rqnew")
    made = 0
    for raw in conn.lrange(pending, 0, BATCH - 1):
        dl_id = _text(raw)
        made += mirror_one(conn, dl_id, prefix, rq)
        conn.lrem(pending, 1, dl_id)
    return made


def drop_gone(conn: Redis, rq: Redis | None, prefix: str = PREFIX) -> int:
    """Delete the failed jobs of the dead letters dropped since the last call (dead.lua lists
    them in `rqgone`): on RQ's own Redis; with RQ on the store's Redis dead.lua already did,
    and the list is only emptied. Returns how many ids were seen."""
    gone, seen = keys.key(prefix, "rqgone"), 0
    while True:
        # popped, so two workers never both take an id; a worker that dies holding some
        # leaves their jobs to the reconcile
        ids = [_text(raw) for raw in conn.lpop(gone, BATCH) or []]
        if rq is not None:
            for dl_id in ids:
                drop_job(rq, dl_id)
        seen += len(ids)
        if len(ids) < BATCH:
            return seen


def mirror_pending(conn: Redis, prefixes: Sequence[str], rq: Redis | None) -> None:
    """mirror_new and drop_gone for every shard whose lists hold something: their lengths
    first, in one pipeline (one round trip a second for every shard, and for one shard
    instead of a read of each list)."""
    with conn.pipeline(transaction=False) as pipe:
        for prefix in prefixes:
            pipe.llen(keys.key(prefix, "rqnew"))
            pipe.llen(keys.key(prefix, "rqgone"))
        lengths = pipe.execute()
    for i, prefix in enumerate(prefixes):
        if lengths[2 * i]:
            mirror_new(conn, prefix, rq)
        if lengths[2 * i + 1]:
            drop_gone(conn, rq, prefix)


def reconcile(conn: Redis, prefixes: Sequence[str] = (PREFIX,), rq: Redis | None = None) -> int:
    """Mirror every dead letter that has no job (of any status), and, with RQ on its own
    Redis, drop the failed jobs whose dead letter is gone. `prefixes`: every shard's, in
    order (a job's letter is looked for in its own shard). Returns how many jobs it made."""
    jobs = conn if rq is None else rq
    made = 0
    for shard_prefix in prefixes:
        start = 0
        dlq = keys.key(shard_prefix, "dlq")
        while True:
            ids = [_text(i) for i in conn.zrange(dlq, start, start + 999)]
            if not ids:
                break
            with jobs.pipeline(transaction=False) as pipe:
                for dl_id in ids:
                    pipe.exists(Job.key_for(dl_id))
                exists = pipe.execute()
            made += sum(
                mirror_one(conn, i, shard_prefix, rq)
                for i, e in zip(ids, exists, strict=True)
                if not e
            )
            start += 1000
    if rq is not None:
        _drop_orphans(conn, rq, prefixes)
    return made


def _drop_orphans(conn: Redis, rq: Redis, prefixes: Sequence[str]) -> None:
    prefix_of = Shards(len(prefixes)).dead_letter_prefix  # the same tags, on Cluster or not
    failed = FailedJobRegistry(RQ_QUEUE, connection=rq).key
    ids = [i for i in (_text(r) for r in rq.zrange(failed, 0, -1)) if DEAD_LETTER_ID.fullmatch(i)]
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        with conn.pipeline(transaction=False) as pipe:
            for dl_id in chunk:
                pipe.exists(keys.key(prefix_of(dl_id), "dl", dl_id))
            exists = pipe.execute()
        for dl_id, e in zip(chunk, exists, strict=True):
            if not e:
                drop_job(rq, dl_id)


def job_states(conn: Redis, ids: Sequence[str]) -> dict[str, str]:
    """The RQ job status of each dead letter ('' when it has no job yet)."""
    with conn.pipeline(transaction=False) as pipe:
        for dl_id in ids:
            pipe.hget(Job.key_for(dl_id), "status")
        states = pipe.execute()
    return {i: _text(s) if s else "" for i, s in zip(ids, states, strict=True)}
