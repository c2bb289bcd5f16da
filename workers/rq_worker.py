"""`DeliveryWorker`: an RQ worker whose work loop is the delivery engine (workers/worker.py).

    rq worker -w workers.DeliveryWorker convo-bridge     # under the supervisor you have
    convo-bridge worker                                   # the short form: the same worker

Delivery stays on the store's Lua scripts (an RQ job per webhook costs ~25 Redis round trips
and gives no per-conversation order or coalescing); what RQ sees and does:
  registry   workers/registration.py keeps rq:worker:<name> true: state idle | busy |
             suspended, counts, the conversations in flight; it survives Redis restarts
  suspend    `rq suspend` is seen within SUSPEND_POLL_S: nothing new is taken and no RQ job
             is started; PATCHes in flight finish and settle. `rq resume` resumes. In burst
             mode a suspended worker exits, as RQ's do
  commands   RQ's pubsub channel (rq.command.send_shutdown_command): RQ's handler sends
             SIGINT to this process, which stops the engine like SIGTERM
  stopping   SIGTERM / SIGINT: PATCHes in flight end and settle while their leases last
             (workers/worker.py); a Redis that answers nothing renews none, so that takes
             at most lease_s, RQ's side ~2 s more: its blocking calls run on daemon threads
             (workers/threads.py) abandoned at exit
  RQ jobs    the `convo-bridge` queue's jobs (dead-letter replays, bridge/store/rq_jobs.py),
             looked for every JOB_POLL_S without blocking, run one at a time in a thread
             beside the event loop, with RQ's own bookkeeping
             (SimpleWorker.execute_job); TimerDeathPenalty, since SIGALRM needs the main thread
Configuration comes from BRIDGE_CONFIG and the environment, as for every command. RQ's
Redis is the RQ connection's (`rq worker -u URL`, RQ_REDIS_URL, or REDIS_URL); the store's
is REDIS_URL when RQ_REDIS_URL is set, else the RQ connection's too.

Only RQ's public names are overridden or used (as rq's own worker classes do): the queue
list is given to RQ's constructor, `connection_timeout` sizes the sync socket timeout,
`subscribe` / `unsubscribe` own the pubsub thread, `increment_*` and `set_state` are RQ's
bookkeeping hooks. tests/workers/test_rq_worker.py checks their shapes on the installed rq.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import redis
from redis.connection import SSLConnection, parse_url
from redis.exceptions import RedisError
from redis.sentinel import SentinelConnectionPool
from rq import Queue, SimpleWorker
from rq.executions import Execution
from rq.job import Job
from rq.suspension import WORKERS_SUSPENDED
from rq.timeouts import TimerDeathPenalty
from rq.worker import WorkerStatus

from bridge.config import Settings, load_settings, require_worker_token
from bridge.logs import configure, fields
from bridge.process import freeze_startup_heap
from bridge.store import rq_jobs
from bridge.store.connect import async_client, parse_redis_url, sync_client
from bridge.store.keys import RQ_QUEUE
from bridge.store.rq_jobs import StillUnroutable
from bridge.store.rq_mirror import mirror_pending, reconcile
from bridge.store.shards import shards_for
from workers.registration import Activity, Registration
from workers.threads import in_daemon_thread
from workers.worker import Engine

log = logging.getLogger("convo_bridge.worker")

SUSPEND_POLL_S = 1.0
JOB_POLL_S = 1.0  # the queue is looked at this often, without blocking: a blocked dequeue
# cost Redis a timeout each time, and one abandoned at stop could move a job into RQ's
# intermediate queue with nobody left to run it
SUBSCRIBE_RETRY_S = 2.0
PUBSUB_POLL_S = 1.0  # the pubsub thread sees stop() this often (RQ's waits 60 s)
SYNC_SOCKET_TIMEOUT_S = 30  # RQ's side notices a Redis that stopped answering within this
LEAVE_S = 1.0  # deregistering on the way out waits this long at most
MIRROR_EVERY_S = 1.0  # new dead letters become RQ failed jobs within about this
RECONCILE_EVERY_S = 300.0  # and every dead letter without a job gets one (at start too)


class DeliveryWorker(SimpleWorker):
    death_penalty_class = TimerDeathPenalty

    def __init__(
        self, queues: Any, *args: Any, settings: Settings | None = None, **kwargs: Any
    ) -> None:
        super().__init__(with_replay_queue(queues), *args, **kwargs)
        self.settings = settings
        self.leaving = threading.Event()  # stop() was called: the pubsub thread ends quietly
        self.engine: Engine | None = None
        self.job_running = False
        self.job_call: asyncio.Future[bool] | None = None  # the RQ job poll (or job) running
        self.jobs_done = 0
        self.jobs_failed = 0
        self.job_seconds = 0.0

    # --- RQ's work() --------------------------------------------------------------------------

    def work(
        self,
        burst: bool = False,
        logging_level: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> bool:
        """RQ's entry point (`rq worker` calls it): run the engine until stopped. Returns
        whether anything was done. max_jobs / max_idle_time / with_scheduler do not apply."""
        settings = self.settings or self._settings_from_environment()
        configure(settings.log)
        require_worker_token(settings)
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        freeze_startup_heap()
        done = asyncio.run(self.run_async(settings, burst=burst))
        return done > 0

    def _settings_from_environment(self) -> Settings:
        settings = load_settings(None)
        if settings.rq_redis_url:  # RQ on a Redis of its own: the RQ connection is that one
            url = redis_url_of(self.connection, settings.rq_redis_url)
            return settings if url == settings.rq_redis_url else replace(settings, rq_redis_url=url)
        url = redis_url_of(self.connection, settings.redis_url)
        return settings if url == settings.redis_url else replace(settings, redis_url=url)

    async def run_async(self, settings: Settings, *, burst: bool, signals: bool = True) -> int:
        """The worker in the running event loop; `signals`: SIGTERM and SIGINT stop it (only
        in the main thread). Returns conversations settled plus RQ jobs run."""
        engine = self.engine = Engine(settings, name=self.name)
        # for the jobs we run
        rq_jobs.configure(
            settings.delivery.coalesce_ms, settings.redis, settings.redis_url, settings.rq_url
        )
        if signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
        client = async_client(  # RQ's Redis: the registration and `rq suspend`
            settings.rq_url, decode_responses=True, socket_timeout=5, socket_connect_timeout=2
        )
        registration = Registration(self, self.activity, client)
        try:  # registered before the first take; if Redis is away, keep() retries
            registration.succeeded(await registration.beat())
        except (RedisError, OSError) as exc:
            registration.failed(exc)
        log.info(
            "worker started",
            extra=fields(name=self.name, concurrency=engine.concurrency, queues=self.queue_names()),
        )
        if await self._suspended(client):  # already: take nothing, not even once
            if burst:
                log.info("suspended in burst mode: exiting", extra=fields(name=self.name))
                await registration.leave()
                await client.aclose()
                return 0
            engine.pause()
            log.warning(
                "suspended (rq suspend): taking nothing; run `rq resume` to resume",
                extra=fields(name=self.name),
            )
        helpers = [
            registration.keep(),
            self._watch_suspension(client, burst),
            self._keep_subscribed(),
            self._mirror_loop(settings),
        ]
        try:
            if burst:
                await in_daemon_thread(self._run_jobs_until_empty)
            else:
                helpers.append(self._jobs_loop())
            settled = await engine.run(burst=burst, helpers=helpers)
            await self._let_the_rq_job_end(engine)
        finally:
            await self._leave(registration, client)
        log.info(
            "worker stopped",
            extra=fields(name=self.name, patched=settled, rq_jobs=self.jobs_done),
        )
        return settled + self.jobs_done

    async def _let_the_rq_job_end(self, engine: Engine) -> None:
        """An RQ job running at stop (a replay) may end within the lease; one still running
        then is abandoned at exit (RQ's registry cleanup fails it; requeued, it replays what
        is left)."""
        call = self.job_call
        if call is not None and not call.done() and self.job_running:
            await asyncio.wait({call}, timeout=engine.left_s())

    async def _leave(self, registration: Registration, client: Any) -> None:
        """Off RQ's channel and out of its registry at once, waiting at most about LEAVE_S +
        PUBSUB_POLL_S: a Redis that answers nothing must not hold the exit (the entry
        expires by itself)."""

        async def unsubscribe() -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LEAVE_S + PUBSUB_POLL_S):
                    await in_daemon_thread(self.unsubscribe)

        async def deregister() -> None:
            try:
                async with asyncio.timeout(LEAVE_S):
                    await registration.leave()
            except TimeoutError:
                log.warning(
                    "could not deregister from RQ; the entry expires by itself",
                    extra=fields(worker=self.name, error=f"no answer within {LEAVE_S:g} s"),
                )
            with contextlib.suppress(TimeoutError, RedisError, OSError):
                async with asyncio.timeout(LEAVE_S):
                    await client.aclose()

        await asyncio.gather(unsubscribe(), deregister())

    def stop(self) -> None:
        """SIGTERM / SIGINT / RQ's shutdown command: the engine stops taking and winds down."""
        if self.engine is not None and not self.engine.stopping.is_set():
            log.info("stopping: in-flight PATCHes finish and settle", extra=fields(name=self.name))
            self.engine.stop()
        self.leaving.set()

    # --- what RQ shows ------------------------------------------------------------------------

    def activity(self) -> Activity:
        engine = self.engine
        held = tuple(h.work.ck for h in engine.held.values()) if engine is not None else ()
        return Activity(
            state=self._state_now(),
            in_flight=held,
            done=(engine.patched if engine else 0) + self.jobs_done,
            failed=(engine.failed if engine else 0) + self.jobs_failed,
            working_s=self.job_seconds,
        )

    def _state_now(self) -> str:
        engine = self.engine
        if engine is not None and engine.paused:
            return WorkerStatus.SUSPENDED.value
        if self.job_running or (engine is not None and engine.held):
            return WorkerStatus.BUSY.value
        return WorkerStatus.IDLE.value

    def set_state(self, state: str, pipeline: Any = None) -> None:
        """RQ sets busy/idle around each RQ job; the state written also counts the engine."""
        if state == WorkerStatus.BUSY:
            self.job_running = True
        elif state == WorkerStatus.IDLE:
            self.job_running = False
        super().set_state(self._state_now() if self.engine is not None else state, pipeline)

    # registration.py writes the counts (one writer): RQ's increments are kept here
    def increment_successful_job_count(self, pipeline: Any = None) -> None:
        self.jobs_done += 1

    def increment_failed_job_count(self, pipeline: Any = None) -> None:
        self.jobs_failed += 1

    def increment_total_working_time(self, job_execution_time: timedelta, pipeline: Any) -> None:
        self.job_seconds += job_execution_time.total_seconds()

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: Any = None,
        exc_string: str = "",
        execution: Execution | None = None,
    ) -> None:
        """A requeued dead letter still unroutable: RQ records the failure as a traceback
        ending in our message; keep only the message (the dead letter's own text, as
        rq-dashboard showed it before the requeue)."""
        _, found, message = exc_string.partition(f"{StillUnroutable.__name__}: ")
        super().handle_job_failure(
            job, queue, started_job_registry, message if found else exc_string, execution
        )

    # --- rq suspend / resume ------------------------------------------------------------------

    async def _suspended(self, client: Any) -> bool:
        try:
            return bool(await client.exists(WORKERS_SUSPENDED))
        except (RedisError, OSError):
            return False  # Redis away: nothing can be taken either; the watcher retries

    async def _watch_suspension(self, client: Any, burst: bool) -> None:
        engine = self.engine
        assert engine is not None
        while True:
            try:
                suspended = bool(await client.exists(WORKERS_SUSPENDED))
            except (RedisError, OSError):
                await asyncio.sleep(SUSPEND_POLL_S)
                continue
            if suspended and not engine.paused:
                if burst:
                    log.info("suspended in burst mode: exiting", extra=fields(name=self.name))
                    self.stop()
                    return
                engine.pause()
                log.warning(
                    "suspended (rq suspend): taking nothing new; run `rq resume` to resume",
                    extra=fields(name=self.name, in_flight=len(engine.held)),
                )
            elif not suspended and engine.paused:
                engine.resume()
                log.warning("resumed (rq resume)", extra=fields(name=self.name))
            await asyncio.sleep(SUSPEND_POLL_S)

    # --- RQ commands --------------------------------------------------------------------------

    async def _keep_subscribed(self) -> None:
        """RQ's pubsub thread carries commands (shutdown); (re)start it whenever it is not
        running: at start while Redis is down, or after it died on an error."""
        announced = False
        while True:
            thread = self.pubsub_thread
            if thread is None or not thread.is_alive():
                try:
                    await in_daemon_thread(self.subscribe)
                    if announced:
                        log.warning("listening for RQ commands again", extra=fields(name=self.name))
                except (RedisError, OSError) as exc:
                    if not announced:
                        log.warning(
                            "cannot listen for RQ commands yet; retrying",
                            extra=fields(name=self.name, error=type(exc).__name__),
                        )
                announced = True
            await asyncio.sleep(SUBSCRIBE_RETRY_S)

    @property
    def connection_timeout(self) -> int:
        """RQ raises the sync connection's socket timeout to this (415 s by default, sized for
        its own 405 s blocking dequeue); ours does not block, so a Redis that stops answering
        is noticed within SYNC_SOCKET_TIMEOUT_S instead."""
        return SYNC_SOCKET_TIMEOUT_S

    def subscribe(self) -> None:
        """RQ's channel for this worker, read by a thread that polls every PUBSUB_POLL_S and
        handles errors as below (RQ's own waits 60 s between polls and dies on any error but
        ConnectionError)."""
        if self.leaving.is_set():
            return
        pubsub = self.connection.pubsub()  # type: ignore[no-untyped-call]
        pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub = pubsub
        self.pubsub_thread = pubsub.run_in_thread(
            sleep_time=PUBSUB_POLL_S, daemon=True, exception_handler=self._on_pubsub_error
        )

    def _on_pubsub_error(self, exc: BaseException, pubsub: Any, thread: Any) -> None:
        """Redis away (a timeout or OSError too, not only ConnectionError): wait and go on.
        On the way out anything goes: the connection is being closed under the thread."""
        if self.leaving.is_set():
            thread.stop()
            return
        if isinstance(exc, RedisError | OSError):
            time.sleep(SUBSCRIBE_RETRY_S)
            return
        raise exc

    def unsubscribe(self) -> None:
        """Stop the pubsub thread without waiting for it: its read returns within
        PUBSUB_POLL_S and the thread then closes its own connection (redis-py's
        PubSubWorkerThread.run), which drops the subscription; nothing is sent to Redis,
        nothing is closed under a thread still reading, and at exit the OS closes it."""
        thread = self.pubsub_thread
        if thread is not None:
            thread.stop()

    # --- dead letters as RQ failed jobs -------------------------------------------------------

    async def _mirror_loop(self, settings: Settings) -> None:
        """bridge/store/rq_mirror.py: new and dropped dead letters every second, all of them
        at start and every RECONCILE_EVERY_S. RQ's connection is RQ's Redis; the dead letters
        are on the store's, the same one unless RQ_REDIS_URL names another."""
        store, rq = self.connection, None
        if settings.rq_url != settings.redis_url:
            store = sync_client(settings.redis_url, socket_timeout=SYNC_SOCKET_TIMEOUT_S)
            rq = self.connection
        try:
            await self._mirror(store, rq, shards_for(settings.redis_url, settings.redis).prefixes)
        finally:
            if rq is not None:
                with contextlib.suppress(RedisError, OSError):
                    store.close()

    async def _mirror(
        self, store: redis.Redis, rq: redis.Redis | None, prefixes: tuple[str, ...]
    ) -> None:
        full_at = 0.0
        while True:
            try:
                if time.monotonic() - full_at >= RECONCILE_EVERY_S:
                    made = await in_daemon_thread(reconcile, store, prefixes, rq)
                    full_at = time.monotonic()
                    if made:
                        log.info("dead letters given RQ failed jobs", extra=fields(jobs=made))
                await in_daemon_thread(mirror_pending, store, prefixes, rq)
            except (RedisError, OSError):
                pass  # Redis away: the registration logs it; the list waits in Redis
            except Exception as exc:
                log.exception("mirroring dead letters to RQ failed", extra=fields(error=repr(exc)))
            await asyncio.sleep(MIRROR_EVERY_S)

    # --- RQ jobs on the queue -----------------------------------------------------------------

    async def _jobs_loop(self) -> None:
        engine = self.engine
        assert engine is not None
        while not engine.stopping.is_set():
            if engine.paused:
                await engine.resumed.wait()
                continue
            try:
                # shielded: stop() cancels this loop, not the job it may be running
                self.job_call = asyncio.ensure_future(in_daemon_thread(self._run_next_job))
                if not await asyncio.shield(self.job_call):
                    await asyncio.sleep(JOB_POLL_S)
            except (RedisError, OSError) as exc:
                log.warning(
                    "RQ job queue unreachable; retrying", extra=fields(error=type(exc).__name__)
                )
                await asyncio.sleep(1.0)
            except Exception as exc:  # RQ's bookkeeping failed; keep serving the queue
                log.exception("RQ job handling failed", extra=fields(error=repr(exc)))
                await asyncio.sleep(1.0)

    def _run_next_job(self) -> bool:
        """The next job on our queues, if any, run here; whether there was one (RQ's
        non-blocking dequeue: one LMOVE into its intermediate queue, as RQ's own workers)."""
        found = self.queue_class.dequeue_any(
            self.queues,
            None,
            connection=self.connection,
            job_class=self.job_class,
            serializer=self.serializer,
            death_penalty_class=self.death_penalty_class,
        )
        if found is None:
            return False
        job, queue = found
        log.info("running RQ job", extra=fields(job_id=job.id, description=job.description))
        self.execute_job(job, queue)
        return True

    def _run_jobs_until_empty(self) -> None:
        while self._run_next_job():
            pass


def with_replay_queue(queues: Any) -> list[Any]:
    """The queues asked for (names or Queues, one or many), plus the `convo-bridge` queue
    where replay jobs go."""
    given = [queues] if isinstance(queues, str | Queue) else list(queues)
    names = {q if isinstance(q, str) else q.name for q in given}
    return given if RQ_QUEUE in names else [*given, RQ_QUEUE]


def redis_url_of(conn: redis.Redis, preferred: str) -> str:
    """`preferred` when it names the server `conn` talks to, else a URL built from `conn`
    (the RQ CLI's -u / RQ_REDIS_URL / REDIS_URL decides where Redis is)."""
    kw = conn.connection_pool.connection_kwargs
    if isinstance(conn.connection_pool, SentinelConnectionPool):
        return _sentinel_url_of(conn.connection_pool, preferred)
    if preferred.startswith("redis+"):  # the RQ CLI was given a server of its own
        preferred = ""
    ours = parse_url(preferred) if preferred else {"host": None}  # type: ignore[no-untyped-call]
    keys = ("host", "port", "db", "path")
    defaults: dict[str, Any] = {"host": "localhost", "port": 6379, "db": 0, "path": None}
    if all(ours.get(k, defaults[k]) == kw.get(k, defaults[k]) for k in keys):
        return preferred
    auth = ""
    if kw.get("password"):
        auth = f"{quote(str(kw.get('username') or ''), safe='')}:{quote(str(kw['password']), safe='')}@"
    if kw.get("path"):
        return f"unix://{auth}{kw['path']}?db={kw.get('db', 0)}"
    scheme = "rediss" if conn.connection_pool.connection_class is SSLConnection else "redis"
    return (
        f"{scheme}://{auth}{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"
    )


def _sentinel_url_of(pool: SentinelConnectionPool, preferred: str) -> str:
    """The redis+sentinel:// URL of a Sentinel-managed pool (`rq worker -c` with SENTINEL,
    or --connection-class bridge.store.connect.Redis): `preferred` when it names the same
    service and database."""
    kw = pool.connection_kwargs
    if preferred.startswith("redis+sentinel://"):
        ours = parse_redis_url(preferred)
        if ours.service == pool.service_name and ours.db == kw.get("db", 0):
            return preferred
    hosts = ",".join(
        f"{s.connection_pool.connection_kwargs.get('host', 'localhost')}:"
        f"{s.connection_pool.connection_kwargs.get('port', 26379)}"
        for s in pool.sentinel_manager.sentinels
    )
    auth = ""
    if kw.get("password"):
        auth = f"{quote(str(kw.get('username') or ''), safe='')}:{quote(str(kw['password']), safe='')}@"
    query = ""
    first = pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs
    if first.get("password"):
        query = f"?sentinel_password={quote(str(first['password']), safe='')}"
    return f"redis+sentinel://{auth}{hosts}/{quote(pool.service_name, safe='')}/{kw.get('db', 0)}{query}"


def worker_name() -> str:
    return f"cb-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def delivery_worker(settings: Settings, queues: Sequence[str] = (RQ_QUEUE,)) -> DeliveryWorker:
    """A DeliveryWorker on `settings`, made without talking to Redis (it may be down)."""
    conn = sync_client(settings.rq_url)
    worker = DeliveryWorker(
        list(queues), name=worker_name(), connection=conn, settings=settings, prepare_for_work=False
    )
    worker.hostname, worker.pid = socket.gethostname(), os.getpid()
    return worker


def run_worker(
    settings: Settings, *, burst: bool = False, queues: Sequence[str] = (RQ_QUEUE,)
) -> int:
    """`convo-bridge worker`: the same worker `rq worker -w workers.DeliveryWorker` starts.
    Starts even while Redis is down (the registration and the loops retry)."""
    worker = delivery_worker(settings, queues)
    worker.work(burst=burst)
    engine = worker.engine
    return engine.patched if engine is not None else 0
