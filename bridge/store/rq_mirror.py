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
"""

from __future__ import annotations

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
from bridge.times import iso

REPLAY_FUNC = "bridge.store.rq_jobs.replay_dead_letter"
KEEP_S = 100 * 365 * 86_400  # dead letters stay until replayed or purged: so do their jobs
JOB_TIMEOUT_S = 600
BATCH = 200
SHOWN_EVENTS = 20


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


def mirror_one(conn: Redis, dl_id: str, prefix: str = PREFIX) -> bool:
    """Make dead letter `dl_id`'s failed job unless it has one (or is gone). True if made."""
    dl_key = keys.key(prefix, "dl", dl_id)
    job_key = Job.key_for(dl_id)
    with conn.pipeline() as pipe:
        while True:
            try:
                pipe.watch(dl_key, job_key)  # type: ignore[no-untyped-call]
                raw = pipe.hgetall(dl_key)
                if not raw or pipe.exists(job_key):
                    pipe.unwatch()
                    return False
                rec = {_text(k): _text(v) for k, v in raw.items()}
                entries = {
                    _text(k): _text(v)
                    for k, v in pipe.hgetall(keys.key(prefix, "dle", dl_id)).items()
                }
                attempts = [_text(a) for a in pipe.lrange(keys.key(prefix, "dla", dl_id), 0, -1)]
                created = datetime.fromtimestamp(int(rec.get("created", "0")) / 1000, UTC)
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
                job.created_at = job.enqueued_at = job.ended_at = created
                text = failure_text(dl_id, rec, entries, attempts)
                pipe.multi()
                FailedJobRegistry(RQ_QUEUE, connection=conn).add(
                    job, ttl=KEEP_S, exc_string=text, pipeline=pipe
                )
                Result.create_failure(job, KEEP_S, exc_string=text, pipeline=pipe)
                pipe.sadd(Queue.redis_queues_keys, Queue(RQ_QUEUE, connection=conn).key)
                pipe.execute()
                return True
            except WatchError:
                continue


def mirror_new(conn: Redis, prefix: str = PREFIX) -> int:
    """Mirror the dead letters made since the last call (dead.lua lists them in `rqnew`)."""
    pending = keys.key(prefix, "rqnew")
    made = 0
    for raw in conn.lrange(pending, 0, BATCH - 1):
        dl_id = _text(raw)
        made += mirror_one(conn, dl_id, prefix)
        conn.lrem(pending, 1, dl_id)
    return made


def reconcile(conn: Redis, prefix: str = PREFIX) -> int:
    """Mirror every dead letter that has no job (of any status). Returns how many."""
    made, start = 0, 0
    while True:
        ids = [_text(i) for i in conn.zrange(keys.key(prefix, "dlq"), start, start + 999)]
        if not ids:
            return made
        with conn.pipeline(transaction=False) as pipe:
            for dl_id in ids:
                pipe.exists(Job.key_for(dl_id))
            exists = pipe.execute()
        made += sum(mirror_one(conn, i, prefix) for i, e in zip(ids, exists, strict=True) if not e)
        start += 1000


def job_states(conn: Redis, ids: Sequence[str]) -> dict[str, str]:
    """The RQ job status of each dead letter ('' when it has no job yet)."""
    with conn.pipeline(transaction=False) as pipe:
        for dl_id in ids:
            pipe.hget(Job.key_for(dl_id), "status")
        states = pipe.execute()
    return {i: _text(s) if s else "" for i, s in zip(ids, states, strict=True)}
