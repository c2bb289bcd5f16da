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
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bridge import metrics
from bridge.admin.guard import AdminMount
from bridge.bodies import read_body
from bridge.config import Settings, SourceSettings
from bridge.content_encoding import codings, decode
from bridge.errors import SignatureError, UnknownSource
from bridge.ingest import ingest
from bridge.logs import fields
from bridge.outcomes import WebhookOutcome
from bridge.process import freeze_startup_heap
from bridge.providers import provider
from bridge.providers.base import Answer, Provider, WebhookRequest
from bridge.refusals import HANDLERS
from bridge.snapshot import QueueSnapshot
from bridge.status import gated_accounts, status_report
from bridge.store import Store

log = logging.getLogger("convo_bridge.ingest")


def answered(answer: Answer) -> Response:
    """A kind's own answer (a handshake's echo, a sender's required acknowledgement)."""
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type)


async def webhook(request: Request) -> Response:
    """Verify, parse, queue, answer 202; a refusal is raised (a RequestError, or
    StoreUnavailable) and answered by its handler (bridge/refusals.py)."""
    settings: Settings = request.app.state.settings
    name = request.path_params["source"]
    started = time.perf_counter()
    source = settings.sources.get(name)
    if source is None:
        raise UnknownSource(f"no source named {name[:64]!r} in the config")
    kind: Provider = request.app.state.kinds[name]
    # ASGI header names are lower case; decoded as Starlette's Headers does, without one
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]}
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
    counts = receipt.to_json()
    ack = kind.acknowledge(source, counts)
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "request done", extra=fields(source=name, ms=(time.perf_counter() - started) * 1e3)
        )
    if ack is not None:  # a sender that needs its own acknowledgement (status, body)
        return answered(ack)
    return Response(orjson.dumps(counts), status_code=202, media_type="application/json")


async def webhook_check(request: Request) -> Response:
    """GET of a webhook URL: 200 for a source whose kind declares that its sender checks the
    URL so before saving it (Zoho Desk; `answer_get`), else 405 as before. Nothing is read,
    proven or queued: the answer says only that the endpoint is alive."""
    settings: Settings = request.app.state.settings
    name = request.path_params["source"]
    source = settings.sources.get(name)
    if source is None:
        raise UnknownSource(f"no source named {name[:64]!r} in the config")
    if not getattr(source.options, "answer_get", False):
        raise HTTPException(405, headers={"Allow": "POST"})  # as Starlette answers it
    return Response(f"convo-bridge: webhook endpoint {name} is alive; POST events here\n")


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


WEBHOOK_OUTCOME = Middleware(WebhookOutcome)  # counted, and a refusal in the event log


def routes() -> list[BaseRoute]:
    from bridge import admin  # the admin surface lives in its own package

    return [
        Route("/webhooks/{source}", webhook, methods=["POST"], middleware=[WEBHOOK_OUTCOME]),
        Route("/webhooks/{source}", webhook_check, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi_endpoint, methods=["GET"]),
        Route("/admin", lambda request: RedirectResponse("/admin/", 308), methods=["GET"]),
        AdminMount("/admin", admin.routes()),  # one guard: AdminGuard
    ]


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
        exception_handlers=HANDLERS,
    )
    app.state.settings = settings
    app.state.kinds = {name: provider(s.kind) for name, s in settings.sources.items()}
    return app


def serve(settings: Settings, host: str, port: int, **options: Any) -> None:
    from bridge.serving import serve as run

    run(settings, host, port, **options)
