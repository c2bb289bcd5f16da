"""From a raw webhook request to events in Redis: verify, parse, normalize, route, accept.

Kept apart from the Starlette wiring (app.py) so the steps read top to bottom and the same
function serves every sender kind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bridge import metrics
from bridge.changes import payloads, safe_event_id
from bridge.config import Settings
from bridge.errors import PayloadError
from bridge.eventlog import body_secret, log_bounds, secret_headers, webhook_row
from bridge.intents import check_segment_id, segment_problem
from bridge.logs import fields
from bridge.providers.base import Provider, SourceEvent, SourceSettings, WebhookRequest
from bridge.providers.formats import parse_json
from bridge.store import AcceptResult, Routed, Store, conversation_key

__all__ = ["Receipt", "ingest", "parse_json", "route"]
log = logging.getLogger("convo_bridge.ingest")


@dataclass(frozen=True, slots=True)
class Receipt:
    """The 202 body: accepted, duplicates and ignored, plus `unroutable`: how many of the accepted
    events name no conversation yet and wait as dead letters for `links set`."""

    accepted: int
    duplicates: int
    ignored: int
    unroutable: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "ignored": self.ignored,
            "unroutable": self.unroutable,
        }


def route(source: SourceSettings, ev: SourceEvent, index: str) -> Routed | None:
    """Where an event goes: its own ids, the source's JMESPath, or the link registry. None
    for an event with nothing to change (unmapped, or mapped to no change): it is ignored,
    never queued nor parked as `unroutable`."""
    intent = ev.intent
    if intent is None or intent.is_empty():
        return None
    event_id = safe_event_id(ev.event_id)
    if intent.agent_id is not None and intent.convo_id is not None:
        ck = conversation_key(intent.agent_id, intent.convo_id)
        return Routed(source.name, event_id, [], None, ck=ck)
    if source.agent_id is not None and source.convo_id is not None:
        try:  # a payload the expression does not fit is a 400 naming it (expressions.py)
            agent = source.agent_id.search(ev.raw)
            convo = source.convo_id.search(ev.raw)
        except PayloadError as exc:
            raise exc.at(index) from None
        if agent is not None and convo is not None:
            try:
                ck = conversation_key(
                    check_segment_id(agent, "agent_id"), check_segment_id(convo, "convo_id")
                )
            except PayloadError as exc:
                expr = (
                    source.agent_id.expression
                    if exc.detail.startswith("agent_id")
                    else source.convo_id.expression
                )
                raise PayloadError(f"{index}{exc.detail} (from JMESPath {expr!r})") from None
            return Routed(source.name, event_id, [], None, ck=ck)
    ext = intent.external_id
    if ext is None:
        raise PayloadError(f"{index}external_id: the event names no conversation to route to")
    # default_agent_id takes the external id as the conversation's; one that cannot be a
    # conversation id waits for a link like any other unroutable event.
    fallback = ""
    if source.default_agent_id and segment_problem(ext) is None:
        fallback = conversation_key(source.default_agent_id, ext)
    return Routed(source.name, event_id, [], None, external_id=ext, fallback_ck=fallback)


def _future(source: str, events: list[Routed]) -> None:
    """Events dated later than receipt + max_clock_skew_s: counted and logged, naming the
    source whose clock is wrong."""
    metrics.FUTURE_EVENTS.labels(source).inc(len(events))
    log.warning(
        "occurred_at in the future: counted as the receipt time (is the sender's clock right?)",
        extra=fields(
            source=source,
            event_ids=[f"{ev.source}:{ev.event_id}" for ev in events][:20],
            occurred_at=[ev.occurred_at for ev in events][:20],
        ),
    )


async def ingest(
    settings: Settings,
    store: Store,
    source: SourceSettings,
    kind: Provider,
    request: WebhookRequest,
) -> Receipt:
    """Queue one verified request, all or nothing. Raises RequestError / StoreUnavailable."""
    payload = kind.parse(source, request)
    try:
        events: list[SourceEvent] = kind.normalize(source, request, payload)
    except PayloadError:
        raise
    except Exception:  # a normalizer bug must not become a 500 with a traceback
        log.exception("normalize failed", extra=fields(source=source.name))
        raise PayloadError("the payload could not be read for this source") from None
    routed: list[Routed] = []
    ignored_ids: list[str] = []
    ignored = 0
    multi = len(events) > 1
    for i, ev in enumerate(events):
        index = f"[{i}]." if multi else ""
        target = route(source, ev, index)
        if target is None or ev.intent is None:
            ignored += 1
            ignored_ids.append(safe_event_id(ev.event_id))
            continue
        occurred: int | None = ev.intent.occurred_at
        if occurred == int(request.received_at * 1000):
            occurred = None  # the sender gave no time: Redis's receipt time (accept.lua)
        routed.append(
            Routed(
                target.source,
                target.event_id,
                payloads(ev.intent, settings.convocore.completed_state),
                occurred,
                target.ck,
                target.external_id,
                target.fallback_ck,
            )
        )
    result = AcceptResult(0, 0, 0)
    logged = settings.eventlog
    row = None
    if logged.enabled:
        row = webhook_row(
            logged,
            source=source.name,
            status=202,
            headers=request.headers,
            body=request.body,
            secret_headers=secret_headers(source),
            body_secret=body_secret(source),
            routed=len(routed),
            event_ids=[r.event_id for r in routed] + ignored_ids,
            conversations=[r.ck for r in routed],
            external_ids=[r.external_id for r in routed],
            ignored=ignored,
        )
    if routed:
        result = await store.accept(
            routed,
            dedup_ttl_s=settings.ingest.dedup_window_s,
            coalesce_ms=settings.delivery.coalesce_ms,
            max_clock_skew_ms=settings.ingest.max_clock_skew_s * 1000,
            log=row,
            log_bounds=log_bounds(logged),
        )
        if result.future:
            _future(source.name, [routed[i] for i in result.future])
    elif row is not None:
        await store.log([row], log_bounds(logged))
    for outcome, n in (
        ("accepted", result.accepted - result.unroutable),
        ("duplicate", result.duplicates),
        ("ignored", ignored),
        ("unroutable", result.unroutable),
    ):
        if n:
            metrics.child(metrics.INTENTS, source.name, outcome).inc(n)
    # the event log holds this request (searchable, with more): then the line is DEBUG, which
    # saves ingest ~12 % of its CPU; without the event log it is the request's only record
    level = logging.DEBUG if logged.enabled else logging.INFO
    if log.isEnabledFor(level):
        log.log(
            level,
            "accepted",
            extra=fields(
                source=source.name,
                accepted=result.accepted,
                duplicates=result.duplicates,
                ignored=ignored,
                unroutable=result.unroutable,
                event_ids=[f"{r.source}:{r.event_id}" for r in routed][:20],
                conversations=sorted({r.ck or f"ext:{r.external_id}" for r in routed})[:20],
            ),
        )
    return Receipt(result.accepted, result.duplicates, ignored, result.unroutable)
