"""The ingest HTTP server: every endpoint in one list of routes, handlers kept small."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge import metrics
from bridge.bodies import read_body
from bridge.config import Settings, SourceSettings
from bridge.content_encoding import codings, decode
from bridge.errors import (
    RequestError,
    SignatureError,
    StoreUnavailable,
    UnknownSource,
)
from bridge.eventlog import log_bounds, secret_headers, webhook_row
from bridge.ingest import ingest
from bridge.logs import fields
from bridge.process import freeze_startup_heap
from bridge.providers import provider
from bridge.providers.base import Answer, Provider, WebhookRequest
from bridge.snapshot import QueueSnapshot
from bridge.status import gated_accounts, status_report
from bridge.store import Store

log = logging.getLogger("convo_bridge.ingest")


def error(exc: RequestError) -> JSONResponse:
    return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status)


def unavailable() -> JSONResponse:
    return JSONResponse(
        {"error": "unavailable", "detail": "the queue (Redis) is unreachable; retry later"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


def answered(answer: Answer) -> Response:
    """A kind's own answer (a handshake's echo, a sender's required acknowledgement)."""
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type)


async def webhook(request: Request) -> Response:
    answer = await _webhook(request)
    name = request.path_params["source"]
    label = name if name in request.app.state.settings.sources else metrics.UNKNOWN_SOURCE
    metrics.WEBHOOK_REQUESTS.labels(label, str(answer.status_code)).inc()
    if 400 <= answer.status_code != 503 and request.app.state.settings.eventlog.enabled:
        await _log_refused(request, answer)
    return answer


async def _log_refused(request: Request, answer: Response) -> None:
    """A refused request's event-log entry (its accepted twin is written with the accept)."""
    settings: Settings = request.app.state.settings
    name = request.path_params["source"][:64]
    try:
        why = str(orjson.loads(answer.body).get("detail", ""))
    except (orjson.JSONDecodeError, AttributeError):
        why = ""
    row = webhook_row(
        settings.eventlog,
        source=name,
        status=answer.status_code,
        headers=request.headers,
        body=getattr(request.state, "body", b""),
        secret_headers=secret_headers(settings.sources.get(name)),
        verdict="refused",
        why=why,
    )
    try:
        await request.app.state.store.log([row], log_bounds(settings.eventlog))
    except StoreUnavailable as exc:
        log.warning("event log not written", extra=fields(source=name, error=str(exc)))


async def _webhook(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    name = request.path_params["source"]
    started = time.perf_counter()
    try:
        source = settings.sources.get(name)
        if source is None:
            raise UnknownSource(f"no source named {name[:64]!r} in the config")
        kind: Provider = request.app.state.kinds[name]
        headers = {k.lower(): v for k, v in request.headers.items()}
        kind.accepts(source, headers)  # the kind says which bodies it takes (else 415)
        applied = codings(headers.get("content-encoding"))  # (else 415 naming the coding)
        limit = settings.ingest.max_body_bytes
        sent = await read_body(request, limit, settings.ingest.read_timeout_s)
        request.state.body = sent  # for the event log, should the request be refused
        body = decode(sent, applied, limit) if applied else sent
        request.state.body = body  # decoded: the event log shows what was sent, readable
        hook = WebhookRequest(
            method=request.method,
            url=str(request.url),
            headers=headers,
            body=body,
            received_at=time.time(),
        )
        verify(kind, source, hook, sent, settings.ingest.signature_tolerance_s)
        answer = kind.challenge(source, hook)
        if answer is not None:  # a sender's set-up handshake: answer it, queue nothing
            return answered(answer)
        receipt = await ingest(settings, request.app.state.store, source, kind, hook)
        ack = kind.acknowledge(source, receipt.to_json())
    except RequestError as exc:
        log.info("refused", extra=fields(source=name[:64], status=exc.status, detail=exc.detail))
        return error(exc)
    except StoreUnavailable as exc:
        log.error("redis unavailable", extra=fields(source=name[:64], error=str(exc)))
        return unavailable()
    except ClientDisconnect:
        return Response(status_code=400)
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "request done", extra=fields(source=name, ms=(time.perf_counter() - started) * 1e3)
        )
    if ack is not None:  # a sender that needs its own acknowledgement (status, body)
        return answered(ack)
    return JSONResponse(receipt.to_json(), status_code=202)


def verify(
    kind: Provider, source: SourceSettings, hook: WebhookRequest, sent: bytes, tolerance_s: int
) -> None:
    """The signature over the body the sender signed: the decoded one (senders sign their
    JSON, then compress it for the wire), or else the bytes as they came, should a sender
    sign those."""
    try:
        kind.verify(source, hook, tolerance_s)
    except SignatureError:
        if sent is hook.body:
            raise
        kind.verify(source, dataclasses.replace(hook, body=sent), tolerance_s)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    if await request.app.state.store.ping():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "redis unreachable"}, status_code=503)


QUEUE_SNAPSHOT_S = 5.0  # scrapes within this share one read of the queue (Redis + RQ)


async def metrics_endpoint(request: Request) -> Response:
    snapshot: QueueSnapshot = request.app.state.queue_snapshot
    queue = await snapshot.get(max_age_s=QUEUE_SNAPSHOT_S)
    body, content_type = metrics.render(queue, request.headers.get("accept", ""))
    return Response(body, media_type=content_type)


async def openapi_endpoint(request: Request) -> Response:
    from bridge.openapi import document

    return JSONResponse(document(list(request.app.state.settings.sources)))


def routes() -> list[Route]:
    from bridge import admin  # the admin surface lives in its own package

    return [
        Route("/webhooks/{source}", webhook, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi_endpoint, methods=["GET"]),
        *admin.routes(),
    ]


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own answers (no such route, method not allowed) as JSON errors too."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        {"error": code, "detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
    )


def build_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.store = store = Store(
            settings.redis_url, durability=settings.redis, rq_url=settings.rq_url
        )
        accounts = gated_accounts(settings.convocore)
        app.state.queue_snapshot = QueueSnapshot(lambda: status_report(store, accounts))
        freeze_startup_heap()
        try:
            yield
        finally:
            await app.state.store.close()

    app = Starlette(
        routes=routes(),
        lifespan=lifespan,
        exception_handlers={HTTPException: http_exception},
    )
    app.state.settings = settings
    app.state.kinds = {name: provider(s.kind) for name, s in settings.sources.items()}
    return app


def serve(settings: Settings, host: str, port: int, **options: Any) -> None:
    from bridge.serving import serve as run

    run(settings, host, port, **options)
