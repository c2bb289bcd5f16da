"""The admin JSON API under /admin/: status, pausing and resuming delivery, dead letters
(list, show, replay, purge), conversations (trace, applied values dated in the future,
clearing them), links and the event log. Who may call them is checked before the handler
runs, by `guard.AdminGuard`."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.admin.control import LetterFilter
from bridge.admin.guard import Api
from bridge.bodies import read_body
from bridge.config import Settings
from bridge.errors import NotFound, PayloadError
from bridge.eventlog import query_from, search
from bridge.fields import check_field, clear_applied, future_applied
from bridge.intents import check_id, check_segment_id
from bridge.status import gated_accounts, status_report
from bridge.store import Store
from bridge.store.rq_jobs import link
from bridge.trace import trace


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def _json_body(request: Request) -> dict[str, Any]:
    ingest = _settings(request).ingest
    raw = await read_body(request, ingest.max_body_bytes, ingest.read_timeout_s)
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise PayloadError("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise PayloadError("expected a JSON object")
    return body


async def status(request: Request) -> Response:
    accounts = gated_accounts(_settings(request).convocore)
    return JSONResponse((await status_report(_store(request), accounts)).to_json())


async def pause_delivery(request: Request) -> Response:
    """Suspend the workers, as `rq suspend` and the page's Pause do: webhooks are still
    queued; nothing is sent until resumed."""
    await _store(request).pause_delivery(True)
    return JSONResponse({"delivery_paused": True})


async def resume_delivery(request: Request) -> Response:
    await _store(request).pause_delivery(False)
    return JSONResponse({"delivery_paused": False})


async def dlq_list(request: Request) -> Response:
    letters = await _store(request).dead_letters()
    source = request.query_params.get("source")
    return JSONResponse(
        [
            d.summary()
            for d in letters
            if source is None or source in d.summary()["source"].split(",")
        ]
    )


async def dlq_show(request: Request) -> Response:
    letter = await _store(request).dead_letter(request.path_params["id"])
    return JSONResponse(letter.to_json())


async def _selected(request: Request) -> list[str]:
    """Ids from {"ids": [...]}, {"all": true}, or a filter: any of {"source": "x",
    "reason": "r", "since": "2h"} (every one given must hold)."""
    body = await _json_body(request)
    store = _store(request)
    if body.get("all") is True:
        return await store.dead_letter_ids(100_000)
    given: dict[str, str] = {k: body[k] for k in ("source", "reason", "since") if k in body}
    if given:
        bad = [k for k, v in given.items() if not isinstance(v, str)]
        if bad:
            raise PayloadError(f"{bad[0]}: expected a string")
        chosen = LetterFilter.of(given)
        return [d.id for d in await store.dead_letters(100_000) if chosen.matches(d)]
    ids = body.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise PayloadError(
            'expected {"ids": [...]}, {"all": true} or a filter {"source", "reason", "since"}'
        )
    return ids


async def dlq_replay_one(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    dl_id = request.path_params["id"]
    res = await _store(request).replay([dl_id], coalesce_ms=settings.delivery.coalesce_ms)
    if res.get(dl_id) == "missing":
        raise NotFound(f"no dead letter {dl_id!r}")
    return JSONResponse({"replayed": res})


async def dlq_replay(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    ids = await _selected(request)
    res = await _store(request).replay(ids, coalesce_ms=settings.delivery.coalesce_ms)
    return JSONResponse({"replayed": res})


async def dlq_delete(request: Request) -> Response:
    n = await _store(request).purge([request.path_params["id"]])
    if not n:
        raise NotFound(f"no dead letter {request.path_params['id']!r}")
    return JSONResponse({"purged": n})


async def dlq_purge(request: Request) -> Response:
    ids = await _selected(request)
    return JSONResponse({"purged": await _store(request).purge(ids)})


async def events(request: Request) -> Response:
    """The event log, newest first, filtered like `convo-bridge events`."""
    query = query_from(request.query_params)
    found = await search(_store(request), query)
    return JSONResponse(
        {
            "events": [e.to_json() for e in found],
            "next_before": found[-1].id if len(found) == query.limit else None,
        }
    )


async def conversation(request: Request) -> Response:
    agent = check_id(request.path_params["agent_id"], "agent_id")
    convo = check_id(request.path_params["convo_id"], "convo_id")
    return JSONResponse((await trace(_store(request), agent, convo)).to_json())


def _conversation_ids(request: Request) -> tuple[str, str]:
    agent = check_id(request.path_params["agent_id"], "agent_id")
    return agent, check_id(request.path_params["convo_id"], "convo_id")


async def conversation_future(request: Request) -> Response:
    agent, convo = _conversation_ids(request)
    return JSONResponse((await future_applied(_store(request), agent, convo)).to_json())


async def conversation_clear(request: Request) -> Response:
    """{"field": "title"} or {"future": true}: forget when those applied values happened,
    so the next event for them wins."""
    agent, convo = _conversation_ids(request)
    body = await _json_body(request)
    if body.get("future") is True and "field" not in body:
        name = None
    elif "field" in body and "future" not in body:
        name = check_field(body["field"])
    else:
        raise PayloadError('expected {"field": "NAME"} or {"future": true}')
    return JSONResponse({"cleared": await clear_applied(_store(request), agent, convo, name)})


async def links_list(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    return JSONResponse(await _store(request).links(settings.sources))


def _link_target(request: Request) -> tuple[str, str]:
    settings: Settings = request.app.state.settings
    source = request.path_params["source"]
    if source not in settings.sources:
        raise NotFound(f"no source named {source[:64]!r}")
    return source, check_id(request.path_params["external_id"], "external_id")


async def link_get(request: Request) -> Response:
    source, ext = _link_target(request)
    agent, convo = await _store(request).get_link(source, ext)
    return JSONResponse(
        {"source": source, "external_id": ext, "agent_id": agent, "convo_id": convo}
    )


async def link_put(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    source, ext = _link_target(request)
    body = await _json_body(request)
    agent = check_segment_id(body.get("agent_id"), "agent_id")
    convo = check_segment_id(body.get("convo_id"), "convo_id")
    result = await link(
        _store(request), source, ext, agent, convo, coalesce_ms=settings.delivery.coalesce_ms
    )
    return JSONResponse(
        {
            "source": source,
            "external_id": ext,
            "agent_id": agent,
            "convo_id": convo,
            "waiting_events": result,
        }
    )


async def link_delete(request: Request) -> Response:
    source, ext = _link_target(request)
    if not await _store(request).delete_link(source, ext):
        raise NotFound(f"no link for {source} {ext!r}")
    return JSONResponse({"deleted": True})


def routes() -> list[Api]:
    return [
        Api("/status", status, "GET"),
        Api("/delivery/pause", pause_delivery, "POST"),
        Api("/delivery/resume", resume_delivery, "POST"),
        Api("/dlq", dlq_list, "GET"),
        Api("/dlq/replay", dlq_replay, "POST"),
        Api("/dlq/purge", dlq_purge, "POST"),
        Api("/dlq/{id}", dlq_show, "GET"),
        Api("/dlq/{id}", dlq_delete, "DELETE"),
        Api("/dlq/{id}/replay", dlq_replay_one, "POST"),
        Api("/events", events, "GET"),
        Api("/conversations/{agent_id}/{convo_id}", conversation, "GET"),
        Api("/conversations/{agent_id}/{convo_id}/future", conversation_future, "GET"),
        Api("/conversations/{agent_id}/{convo_id}/clear", conversation_clear, "POST"),
        Api("/links", links_list, "GET"),
        Api("/links/{source}/{external_id:path}", link_get, "GET"),
        Api("/links/{source}/{external_id:path}", link_put, "PUT"),
        Api("/links/{source}/{external_id:path}", link_delete, "DELETE"),
    ]
