"""The worker process: an asyncio engine that takes due conversations and PATCHes them.

RQ's job path (one job per unit, fork per job) measured 232 jobs/s with SimpleWorker here,
far below the delivery target, and cannot give per-conversation order or coalescing. So the
hot path is the store's Lua scripts (take / settle / renew / sweep). The process around the
engine is an RQ worker (workers/rq_worker.py: registration, suspension, commands, RQ jobs).

Loops, all in one event loop:
  take     up to `concurrency` conversations at once; each runs apply() then settle()
  renew    extends the leases of what this worker holds, every lease_s / 3; a lease whose
           renewal is refused is marked lost and its work stops at the next fence
  sweep    every 2 s: conversations whose lease expired (a dead worker's) go back to due,
           after in_doubt_quiet_s (its PATCH may still land)
  helpers  whatever the caller runs beside them (the RQ side: workers/rq_worker.py)
Each held conversation is keyed by its lease token, so a conversation taken again by this
same worker (its first lease expired) has both leases renewed and each settled on its own.
stop(): stop taking, let running requests end (a GET and a PATCH, each within
request_timeout_s) and settle for as long as their leases last (renewed while Redis
answers), then hand back the rest. A Redis that stops answering (half-open: no answer, no
error) renews nothing, so the leases end at most lease_s after the stop: what is still
running then is cancelled and released (a PATCH that left, in doubt), and each step of the
way out is bounded, so the process ends within about lease_s + 3 s whatever Redis does.
pause(): take nothing new until resume(); PATCHes in flight finish (`rq suspend`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import replace
from typing import Any

from redis.exceptions import RedisError

from bridge.config import Settings
from bridge.errors import StoreUnavailable
from bridge.eventlog import log_bounds, patch_entry
from bridge.logs import fields
from bridge.store import Outcome, Store, Work
from workers.accounts import Accounts
from workers.apply import apply, worker_error
from workers.lease import FENCE_MARGIN_S, Fence, Held

log = logging.getLogger("convo_bridge.worker")
SWEEP_EVERY_S = 2.0
TAKE_GRACE_S = 0.5  # after stop(), a take still waiting on Redis is cancelled after this
CLOSE_S = 1.0  # each step of the way out (release, closing) is bounded by this
# an idle worker waits until the next conversation is due, for a wake, or this long at most:
# whatever becomes due sooner than the head it saw, or now, wakes a worker (prelude.lua's
# added_due), so this bound only catches what a lost wake (a Redis restart) left behind
IDLE_WAIT_S = 5.0


class Engine:
    def __init__(
        self, settings: Settings, *, concurrency: int | None = None, name: str | None = None
    ) -> None:
        self.settings = settings
        d = settings.delivery
        self.concurrency = concurrency or d.concurrency
        self.lease_ms = int(d.lease_s * 1000)
        self.store = Store(settings.redis_url, durability=settings.redis, rq_url=settings.rq_url)
        self.accounts = Accounts(settings, timeout_s=d.request_timeout_s)
        self.rng = random.Random()
        self.held: dict[str, Held] = {}  # by lease token
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = asyncio.Event()
        self.slot_freed = asyncio.Event()
        self.waiting_for_wake = False  # the take loop is only waiting (idle): safe to cut off
        self.name = name or f"cb-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.patched = 0
        self.failed = 0  # attempts that did not apply (retried or dead-lettered)
        self.resumed = asyncio.Event()
        self.resumed.set()
        self.stopped_at: float | None = None  # monotonic

    def stop(self) -> None:
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()
        self.stopping.set()
        self.slot_freed.set()
        self.resumed.set()

    def pause(self) -> None:
        self.resumed.clear()

    def resume(self) -> None:
        self.resumed.set()

    @property
    def paused(self) -> bool:
        return not self.resumed.is_set()

    async def run(
        self, *, burst: bool = False, helpers: Sequence[Coroutine[Any, Any, None]] = ()
    ) -> int:
        """Work until stopped (or, with burst, until nothing is due or held), with `helpers`
        running beside the loops. Returns the number of conversations settled."""
        waker = Store(  # its own clients: a block on the wake list holds a connection
            self.settings.redis_url,
            durability=self.settings.redis,
            rq_url=self.settings.rq_url,
            socket_timeout=None,
        )
        tasks = [
            asyncio.create_task(self._renew_loop()),
            asyncio.create_task(self._sweep_loop()),
            *(asyncio.create_task(h) for h in helpers),
        ]
        try:
            await self._take_until_stopped(waker, burst)
            await self._let_running_end()
            for t in list(self.tasks):  # their leases ended (settle retrying on a silent Redis)
                t.cancel()
            if self.tasks:
                await asyncio.wait(self.tasks, timeout=CLOSE_S / 2)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            await _bounded(self._release_all(), CLOSE_S)
            await _bounded(self._close(waker), CLOSE_S)
        return self.patched

    async def _close(self, waker: Store) -> None:
        await self.accounts.close()
        await waker.close()
        await self.store.close()

    async def _let_running_end(self) -> None:
        """Wait for the running deliveries while their leases last (the renew loop extends
        them while Redis answers), at most a GET and a PATCH and 10 s."""
        cap = time.monotonic() + 2 * self.settings.delivery.request_timeout_s + 10
        while self.tasks:
            leases_end = max((h.until for h in self.held.values()), default=0.0)
            left = min(cap, leases_end) - time.monotonic()
            if left <= 0:
                return
            await asyncio.wait(self.tasks, timeout=min(left, 0.5))  # renewals move the end

    def left_s(self) -> float:
        """Seconds the way out may still take: until the last lease held at stop() ends."""
        if self.stopped_at is None:  # a burst run that ran out of work: nothing to bound
            return 2 * self.settings.delivery.request_timeout_s + 10
        return max(self.stopped_at + self.lease_ms / 1000 - time.monotonic(), 0.0)

    async def _take_until_stopped(self, waker: Store, burst: bool) -> None:
        """The take loop, cut off TAKE_GRACE_S after stop() when it is still waiting on Redis
        (a silent Redis holds a call for its whole timeout). A take cut off after its script
        ran leaves leases nobody renews: they lapse and the sweep returns the work."""
        take = asyncio.create_task(self._take_loop(waker, burst))
        stopped = asyncio.create_task(self.stopping.wait())
        try:
            await asyncio.wait({take, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not take.done() and not self.waiting_for_wake:  # a wait is cut off at once
                await asyncio.wait({take}, timeout=TAKE_GRACE_S)
        finally:
            stopped.cancel()
            if not take.done():
                take.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await take
        if not take.cancelled():
            take.result()  # a bug in the take loop is raised here

    async def _take_loop(self, waker: Store, burst: bool) -> None:
        pause = 0.05
        while not self.stopping.is_set():
            if self.paused:
                await self.resumed.wait()
                continue
            free = self.concurrency - len(self.tasks)
            if free <= 0:
                self.slot_freed.clear()
                await self.slot_freed.wait()
                continue
            taken_at = time.monotonic()
            try:
                batch, next_due = await self.store.take(
                    free, lease_ms=self.lease_ms, rate_limit=self.settings.delivery.rate_limit_per_s
                )
                pause = 0.05
            except StoreUnavailable as exc:
                log.warning("redis unavailable; retrying", extra=fields(error=str(exc)))
                await self._sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            for work in batch:
                held = self.held[work.token] = Held(work, taken_at + self.lease_ms / 1000)
                task = asyncio.create_task(self._deliver(held))
                self.tasks.add(task)
                task.add_done_callback(self._done)
            if batch and (len(batch) >= free or next_due == 0):
                continue  # more may be due now
            # else nothing more is due now: whatever becomes due pushes a wake (take again
            # at once would only find nothing, a Redis call per PATCH)
            if burst and not self.tasks and await self._nothing_left():
                return
            wait = IDLE_WAIT_S
            if next_due is not None:
                wait = min(IDLE_WAIT_S, max(next_due / 1000, 0.005))
            self.waiting_for_wake = True  # holds no lease: stop() cancels it without grace
            try:
                await asyncio.wait_for(self.store.wait_for_work(waker, wait), wait + 1.0)
            except (StoreUnavailable, TimeoutError):
                await self._sleep(pause)
            finally:
                self.waiting_for_wake = False

    async def _nothing_left(self) -> bool:
        return (await self.store.status()).queue_depth == 0

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task failed", extra=fields(error=repr(task.exception())))

    async def _deliver(self, held: Held) -> None:
        work = held.work
        account = self.accounts.of(work)
        if self.accounts.gated:  # the account's own circuit and rate limit say when
            try:
                wait_ms = await self.store.gate(
                    account.name, rate=account.rate_limit_per_s, probe_ms=self.lease_ms
                )
            except StoreUnavailable:
                wait_ms = 1000
            if wait_ms:
                await self._settle(work, Outcome("wait", retry_in_ms=wait_ms))
                return
        fence = Fence(
            held, self._renew_one, self.settings.delivery.request_timeout_s + FENCE_MARGIN_S
        )
        try:
            outcome = await apply(work, account.client, self.settings, self.rng, fence)
        except Exception as exc:  # a bug must not strand the conversation: an attempt too
            outcome = worker_error(work, exc, self.settings, self.rng)
        if self.accounts.gated and outcome.circuit:  # the account's circuit, not the shared one
            with contextlib.suppress(StoreUnavailable):
                await self.store.gate_record(account.name, outcome.circuit, self.settings.delivery)
            outcome = replace(outcome, circuit="")
        await self._settle(work, outcome)

    async def _settle(self, work: Work, outcome: Outcome) -> None:
        """Settle the attempt, its event-log entry (none for work let go unattempted) in the
        same call: one Redis call per attempt, and the entry names the dead letter made."""
        pause = 0.05
        deadline = time.time() + 600
        dead_id = ""
        logged = self.settings.eventlog
        row = patch_entry(logged, work, outcome)
        while True:
            try:
                dead_id = await self.store.settle(
                    work,
                    outcome,
                    settings=self.settings.delivery,
                    log=row,
                    log_bounds=log_bounds(logged),
                )
                break
            except StoreUnavailable:
                if time.time() > deadline:
                    log.error(
                        "could not settle; the lease will expire and the work is retried",
                        extra=fields(ck=work.ck),
                    )
                    break
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
            except Exception as exc:  # a bug: let go, so the lease expires and it is retried
                log.error(
                    "settle failed; the lease will expire and the work is retried",
                    extra=fields(ck=work.ck, error=repr(exc)),
                )
                break
        self.held.pop(work.token, None)
        if dead_id:
            await self._note_origin(work, dead_id)
        if outcome.kind == "ok":
            self.patched += 1
        elif outcome.kind not in ("release", "wait"):
            self.failed += 1

    async def _note_origin(self, work: Work, dead_id: str) -> None:
        """A dead letter made of a replay's events points back to the replayed letter."""
        events = [f"{e.source}:{e.event_id}" for e in work.entries]
        try:
            await self.store.note_dead_letter(work.ck, dead_id, events)
        except StoreUnavailable as exc:
            log.warning("replay origin not noted", extra=fields(ck=work.ck, error=str(exc)))

    async def _release_all(self) -> None:
        """Whatever is still held on the way out goes back to due: at once when nothing was
        sent, after the quiet period when a PATCH left and never ended (in doubt)."""
        for held in list(self.held.values()):
            outcome = Outcome("release", sent=held.work.entries, in_doubt=held.sent)
            with contextlib.suppress(StoreUnavailable):
                await self.store.settle(held.work, outcome, settings=self.settings.delivery)
        self.held.clear()

    async def _renew_one(self, held: Held) -> bool:
        """Renew one lease now (the fence found too little of it left)."""
        sent_at = time.monotonic()
        try:
            (ok,) = await self.store.renew([(held.work.ck, held.work.token)], self.lease_ms)
        except StoreUnavailable:
            return False  # cannot prove we hold it: do not send
        if ok:
            held.until = sent_at + self.lease_ms / 1000
        return ok

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _renew_loop(self) -> None:
        every = self.lease_ms / 3000
        while True:
            await asyncio.sleep(every)
            held = list(self.held.values())
            sent_at = time.monotonic()
            try:
                renewed = await self.store.renew(
                    [(h.work.ck, h.work.token) for h in held], self.lease_ms
                )
            except StoreUnavailable:
                continue
            for h, ok in zip(held, renewed, strict=True):
                if ok:
                    h.until = max(h.until, sent_at + self.lease_ms / 1000)
                else:
                    h.lost = True  # its work stops at the next fence

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY_S * (0.5 + random.random()))
            try:
                swept = await self.store.sweep(int(self.settings.delivery.in_doubt_quiet_s * 1000))
                if swept:
                    log.warning("recovered expired leases", extra=fields(conversations=swept))
            except StoreUnavailable:
                continue


async def _bounded(step: Coroutine[Any, Any, None], seconds: float) -> None:
    """One step of the way out, given up after `seconds` (a silent Redis, a stuck socket)."""
    with contextlib.suppress(TimeoutError, StoreUnavailable, RedisError, OSError):
        async with asyncio.timeout(seconds):
            await step
