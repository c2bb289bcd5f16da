"""One unit of delivery: a taken conversation's pending changes → one PATCH → an Outcome.

The outcome goes back to the store's settle script, which removes exactly what was sent
(unless overtaken meanwhile), schedules a retry, or dead-letters, as the retry policy says.
Every request is preceded by the lease fence (workers/lease.py); a PATCH that timed out or
lost its connection after it was sent is *in doubt* (it may still be applied): the settle
script then holds the conversation quiet for `in_doubt_quiet_s` before its next PATCH.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson

from bridge import metrics
from bridge.changes import Entry
from bridge.config import Settings
from bridge.errors import (
    DeliveryError,
    LeaseLost,
    TargetDeclined,
    TargetRefused,
    TargetUnreachable,
)
from bridge.logs import fields
from bridge.store import OFFLOAD_ENTRIES, Outcome, Verdict, Work
from workers import retry
from workers.compose import arrays_of, compose, needs_arrays
from workers.convocore import Convocore
from workers.lease import Fence

log = logging.getLogger("convo_bridge.worker")


async def apply(
    work: Work, client: Convocore, settings: Settings, rng: random.Random, fence: Fence
) -> Outcome:
    started = time.time()
    attempt = work.attempts + 1
    arrays = work.arrays
    fetched = False  # the arrays came from the target now, not from the cache
    body = b""
    try:
        if arrays is None and needs_arrays(work.entries, work.applied):
            await fence.check()
            arrays = arrays_of(await client.get(work.ck))
            fetched = True
        unit = settings.convocore.time_unit
        if len(work.entries) + len(work.applied) > OFFLOAD_ENTRIES:  # linear, not free
            composed = await asyncio.to_thread(compose, work.entries, work.applied, arrays, unit)
        else:
            composed = compose(work.entries, work.applied, arrays, unit)
        data: dict[str, object] = {}
        if composed.conversation:
            body = client.body(composed.conversation)  # orjson: ~1 ms per MB
            await fence.check()
            fence.sending()
            data = await client.patch(work.ck, body)
    except LeaseLost:
        return Outcome("release")  # nothing sent on a lost lease; whoever holds it goes on
    except DeliveryError as exc:
        return replace(_failed(work, exc, attempt, started, settings, rng), body=body)
    except Exception as exc:  # a bug or an unsendable change: an attempt too
        return replace(worker_error(work, exc, settings, rng), body=body)
    # what the arrays are now: as this PATCH made them, or as a GET or the answer said; a
    # cached copy that nothing was sent against is not written back (its expiry would renew)
    new_arrays = composed.arrays if composed.conversation or fetched else None
    if any(k in data for k in ("tags", "handoffHistory")):
        new_arrays = arrays_of(data)
    now = time.time()
    elapsed = now - started
    metrics.PATCHES.labels("ok").inc()
    metrics.ATTEMPT_SECONDS.observe(elapsed)
    # receipt times are Redis's clock: compare them with this host's, corrected to it
    redis_now = now + work.clock_offset_ms / 1000
    oldest = redis_now
    for received in {e.received_ms for e in work.entries if e.received_ms}:
        metrics.WEBHOOK_TO_PATCH_SECONDS.observe(max(redis_now - received / 1000, 0.0))
        oldest = min(oldest, received / 1000)
    # the event log holds this PATCH (body, answer, duration): then the line is DEBUG, as
    # ingest's `accepted` is; without the event log it is the PATCH's only record
    level = logging.DEBUG if settings.eventlog.enabled else logging.INFO
    if log.isEnabledFor(level):
        agent, convo = work.ids
        log.log(
            level,
            "patched",
            extra=fields(
                agent_id=agent,
                convo_id=convo,
                attempt=attempt,
                status="ok",
                duration_ms=round(elapsed * 1000, 1),
                since_webhook_ms=round((redis_now - oldest) * 1000, 1),
                changes=len(work.entries),
                event_ids=_event_ids(work),
            ),
        )
    return Outcome(
        "ok",
        sent=work.entries,
        arrays=new_arrays,
        circuit="ok",
        body=body,
        duration_ms=round(elapsed * 1000, 1),
        # for the event log only: the whole answer (tag lists can be long) is not encoded
        # again for nothing
        answer=orjson.dumps(data).decode()[:300] if body and settings.eventlog.enabled else "",
    )


def _failed(
    work: Work,
    exc: DeliveryError,
    attempt: int,
    started: float,
    settings: Settings,
    rng: random.Random,
) -> Outcome:
    status = exc.status if isinstance(exc, TargetRefused) else None
    answer = exc.snippet if isinstance(exc, TargetRefused) else str(exc)
    in_doubt = isinstance(exc, TargetUnreachable) and exc.in_doubt
    now = time.time()
    d = settings.delivery
    decision = retry.decide(
        status=status,
        retry_after=exc.retry_after if isinstance(exc, TargetRefused) else None,
        attempt=attempt,
        max_attempts=d.max_attempts,
        initial_s=d.backoff_initial_s,
        max_s=d.backoff_max_s,
        now_s=now,
        rng=rng,
        declined_code=exc.code if isinstance(exc, TargetDeclined) else None,
    )
    record = {
        "at": int(started * 1000),
        "status": status if status is not None else "no_answer",
        "answer": answer,
        "duration_ms": round((now - started) * 1000, 1),
    }
    if in_doubt:
        record["in_doubt"] = True
    metrics.PATCHES.labels(str(record["status"])).inc()
    metrics.ATTEMPT_SECONDS.observe(now - started)
    agent, convo = work.ids
    declined = isinstance(exc, TargetDeclined)
    circuit: Verdict = "fail" if retry.is_retryable(status) and not declined else "ok"
    if isinstance(decision, retry.Retry):
        log.warning(
            "retry scheduled",
            extra=fields(
                agent_id=agent,
                convo_id=convo,
                attempt=attempt,
                status=record["status"],
                retry_in_s=round(decision.delay_s, 3),
                answer=answer,
                in_doubt=in_doubt,
                event_ids=_event_ids(work),
            ),
        )
        return Outcome(
            "retry",
            sent=work.entries,
            attempt=record,
            retry_in_ms=int(decision.delay_s * 1000),
            circuit=circuit,
            in_doubt=in_doubt,
        )
    return _dead(
        work,
        attempt,
        record,
        decision.reason,
        answer,
        sent=work.entries,
        circuit=circuit,
        in_doubt=in_doubt,
    )


def worker_error(work: Work, exc: Exception, settings: Settings, rng: random.Random) -> Outcome:
    """An error inside the bridge while preparing or sending: counted as an attempt, and a
    dead letter (`worker_error`) after max_attempts, so a poison change cannot loop forever."""
    d = settings.delivery
    attempt = work.attempts + 1
    decision = retry.after_worker_error(
        attempt=attempt,
        max_attempts=d.max_attempts,
        initial_s=d.backoff_initial_s,
        max_s=d.backoff_max_s,
        rng=rng,
    )
    answer = f"{type(exc).__name__}: {str(exc)[:120]}"
    now = time.time()
    record = {"at": int(now * 1000), "status": "worker_error", "answer": answer}
    agent, convo = work.ids
    log.error(
        "apply crashed",
        exc_info=exc,
        extra=fields(agent_id=agent, convo_id=convo, attempt=attempt, error=type(exc).__name__),
    )
    if isinstance(decision, retry.Retry):
        return Outcome("retry", attempt=record, retry_in_ms=int(decision.delay_s * 1000))
    return _dead(work, attempt, record, decision.reason, answer)


def _dead(
    work: Work,
    attempt: int,
    record: dict[str, Any],
    reason: str,
    answer: str,
    *,
    sent: Sequence[Entry] = (),
    circuit: Verdict = "",
    in_doubt: bool = False,
) -> Outcome:
    """The dead-letter outcome of a last attempt, and its log line."""
    agent, convo = work.ids
    log.error(
        "dead-lettered",
        extra=fields(
            agent_id=agent,
            convo_id=convo,
            attempt=attempt,
            status=record["status"],
            reason=reason,
            answer=answer,
            event_ids=_event_ids(work),
        ),
    )
    return Outcome(
        "dead",
        sent=sent,
        attempt=record,
        reason=reason,
        status=str(record["status"]),
        snippet=answer,
        circuit=circuit,
        in_doubt=in_doubt,
    )


def _event_ids(work: Work) -> list[str]:
    """`source:event id` of what the attempt carried: the id that follows a webhook from
    its `accepted` log line at ingest to this one."""
    return sorted({f"{e.source}:{e.event_id}" for e in work.entries})[:20]
