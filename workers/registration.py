"""This worker's entry in RQ's worker registry, kept true for as long as the process runs.

`rq info`, rq-dashboard and `convo-bridge status` read `rq:worker:<name>` (a hash) and the
`rq:workers` / `rq:workers:<queue>` sets. RQ's own `register_birth` refuses a name whose
hash still exists, which is what a worker finds after Redis restarts from its append-only
file: the old heartbeat task died on that ValueError without a log line, and ~45 s later
every tool reported 0 workers while the worker kept delivering. Here every beat is an
upsert of the whole entry in one MULTI, so a restart, a flush or an expiry is repaired at
the next beat (and logged); a failed beat is logged and retried every second, never fatal.

Fields RQ reads: birth, last_heartbeat, queues, pid, hostname, ip_address, version,
python_version, state (idle | busy | suspended), successful_job_count / failed_job_count
(`rq info` prints them as "jobs: N finished, M failed"; here PATCHes applied and failed
attempts plus RQ jobs run), total_working_time. Ours beside them: convo_bridge_in_flight
and convo_bridge_conversations (what the worker is PATCHing now).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError
from rq.version import VERSION
from rq.worker import BaseWorker
from rq.worker_registration import REDIS_WORKER_KEYS, WORKERS_BY_QUEUE_KEY

from bridge.logs import fields

log = logging.getLogger("convo_bridge.worker")

BEAT_S = 5.0  # a full write at least this often
TTL_S = 30  # a worker that stops beating (kill -9) leaves RQ's registry after this
STATE_POLL_S = 0.5  # a change of state (idle/busy/suspended) is written within this
RETRY_S = 1.0
SHOWN_CONVERSATIONS = 20


@dataclass(frozen=True, slots=True)
class Activity:
    """What the worker is doing, as RQ shows it."""

    state: str  # idle | busy | suspended
    in_flight: tuple[str, ...]  # conversation keys being PATCHed
    done: int  # PATCHes applied + RQ jobs finished
    failed: int  # failed attempts + RQ jobs failed
    working_s: float


def rq_time(moment: datetime) -> str:
    """RQ's timestamp format (rq.utils.utcformat)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Registration:
    """Keeps `worker`'s RQ entry true on `redis` (an asyncio client of its own)."""

    def __init__(self, worker: BaseWorker, activity: Callable[[], Activity], redis: Any) -> None:
        self.worker = worker
        self.activity = activity
        self.redis = redis
        self.birth = datetime.now(UTC)
        self.beats = 0  # successful beats
        self.registrations = 0  # beats that found no entry and created it
        self.failing_since: float | None = None
        self.ip_address = ""

    @property
    def key(self) -> str:
        return str(self.worker.key)

    def _entry(self, act: Activity) -> dict[str, str | int | float]:
        w = self.worker
        return {
            "birth": rq_time(self.birth),
            "last_heartbeat": rq_time(datetime.now(UTC)),
            "queues": ",".join(w.queue_names()),
            "pid": w.pid or 0,
            "hostname": w.hostname or "",
            "ip_address": self.ip_address or "unknown",
            "version": VERSION,
            "python_version": sys.version,
            "state": act.state,
            "successful_job_count": act.done,
            "failed_job_count": act.failed,
            "total_working_time": round(act.working_s, 3),
            "convo_bridge_in_flight": len(act.in_flight),
            "convo_bridge_conversations": " ".join(act.in_flight[:SHOWN_CONVERSATIONS]),
        }

    async def beat(self) -> bool:
        """Write the whole entry; True when it was missing (and is now registered)."""
        if not self.ip_address:
            info = await self.redis.client_info()
            self.ip_address = str(info.get("addr", "unknown"))
        act = self.activity()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.exists(self.key)
            pipe.hset(self.key, mapping=self._entry(act))
            pipe.hdel(self.key, "death")
            pipe.expire(self.key, TTL_S)
            pipe.expire(self.worker.executions_key, TTL_S)
            pipe.sadd(REDIS_WORKER_KEYS, self.key)
            for queue in self.worker.queues:
                pipe.sadd(WORKERS_BY_QUEUE_KEY % queue.name, self.key)
                pipe.sadd(queue.redis_queues_keys, queue.key)  # so `rq info` lists it
            existed, *_ = await pipe.execute()
        return not existed

    async def keep(self) -> None:
        """Beat every BEAT_S, and within STATE_POLL_S of a change of state, until cancelled."""
        last_at = time.monotonic() if self.beats else 0.0
        last_state = self.activity().state if self.beats else ""
        while True:
            state = self.activity().state
            if state == last_state and time.monotonic() - last_at < BEAT_S:
                await asyncio.sleep(STATE_POLL_S)
                continue
            try:
                created = await self.beat()
            except (RedisError, OSError) as exc:
                self.failed(exc)
                await asyncio.sleep(RETRY_S)
                continue
            except Exception as exc:  # a bug here must not end the registration silently
                log.exception(
                    "RQ registration beat crashed; retrying", extra=fields(error=repr(exc))
                )
                await asyncio.sleep(RETRY_S)
                continue
            self.succeeded(created)
            last_at, last_state = time.monotonic(), state

    def failed(self, exc: BaseException) -> None:
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log.warning(
                "RQ registration failed; retrying every second",
                extra=fields(worker=self.worker.name, error=type(exc).__name__),
            )

    def succeeded(self, created: bool) -> None:
        if self.failing_since is not None:
            log.warning(
                "RQ registration restored",
                extra=fields(
                    worker=self.worker.name,
                    after_s=round(time.monotonic() - self.failing_since, 1),
                ),
            )
            self.failing_since = None
        if created:
            self.registrations += 1
            if self.beats:
                log.warning(
                    "registered with RQ again: its entry was gone (Redis restarted or flushed)",
                    extra=fields(worker=self.worker.name),
                )
            else:
                log.info("registered with RQ", extra=fields(worker=self.worker.name))
        self.beats += 1

    async def leave(self) -> None:
        """RQ's register_death: out of the sets, `death` set, the entry expires in 60 s."""
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.srem(REDIS_WORKER_KEYS, self.key)
                for name in self.worker.queue_names():
                    pipe.srem(WORKERS_BY_QUEUE_KEY % name, self.key)
                pipe.hset(self.key, mapping={"death": rq_time(datetime.now(UTC)), "state": "dead"})
                pipe.expire(self.key, 60)
                pipe.delete(self.worker.executions_key)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning(
                "could not deregister from RQ; the entry expires by itself",
                extra=fields(worker=self.worker.name, ttl_s=TTL_S, error=type(exc).__name__),
            )
