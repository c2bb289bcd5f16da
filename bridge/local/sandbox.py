"""`convo-bridge sandbox`: a local, in-memory stand-in for the Convocore conversation API.

Serves PATCH and GET /agents/{agentId}/convos/{convoId} with Convocore's rules (field
catalogue, types, state values, lastModified set by the server, 404 for unknown
conversations unless created), plus fault injection and control endpoints under /_sandbox/
that the tests and benchmarks use:

    PUT    /_sandbox/agents/{a}/convos/{c}   create a conversation (optional initial fields)
    POST   /_sandbox/faults                  {"script": [429, 503, "timeout", 200, STEP], "retry_after": 2,
                                              "latency_ms": 20, "fail_rate": 0.1,
                                              "throttle_rate": 0.05,  (429 + Retry-After: 1)
                                              "get_latency_ms": 1500,  (GETs only)
                                              "hold_rate": 0.05, "hold_s": 2}  (held, then applied)
      where a STEP object is {"hold_s": 3} (hold the PATCH 3 s, then apply it, whoever still
      listens: a timed-out request applied late), or {"success": false, "code": "X"} (answer
      200 with {"success": false, "error": {"code": "X", ...}} and apply nothing)
    DELETE /_sandbox/faults                  back to no faults
    GET    /_sandbox/log   DELETE /_sandbox/log[?all=1]   every PATCH received
    GET    /_sandbox/stats                   patches, by_status, overlaps, max_inflight, held
    GET    /_sandbox/convos                  every conversation
"""

from __future__ import annotations

import asyncio
import hmac
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.catalogue import field_problem
from bridge.process import freeze_startup_heap

FREEZE_EVERY = 1000  # PATCHes logged


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )


def _error(status: int, code: str, message: str, **headers: str) -> Response:
    return _json(
        {"success": False, "error": {"code": code, "message": message}}, status, headers or None
    )


@dataclass
class Faults:
    fail_rate: float = 0.0
    latency_ms: float = 0.0
    retry_after: float | None = None
    script: deque[Any] = field(default_factory=deque)
    throttle_rate: float = 0.0  # share answered 429 with Retry-After (retry_after, else 1 s)
    get_latency_ms: float = 0.0
    hold_rate: float = 0.0  # share of PATCHes held `hold_s`, then applied
    hold_s: float = 0.0


@dataclass
class State:
    faults: Faults
    auto_create: bool
    token: str | None
    rng: random.Random
    convos: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)
    inflight: Counter[tuple[str, str]] = field(default_factory=Counter)
    overlaps: int = 0
    max_inflight: int = 0
    held: int = 0  # PATCHes held by fault injection, then applied
    by_status: Counter[int] = field(default_factory=Counter)


def _check_fields(fields: Any) -> str | None:
    if not isinstance(fields, dict):
        return "conversation: expected an object of fields"
    for name, value in fields.items():
        problem = field_problem(name, value)
        if problem:
            return f"conversation.{name}: {problem}"
    return None


async def _read_object(request: Request) -> tuple[dict[str, Any] | None, Response | None]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None, _error(400, "BAD_REQUEST", "body is not valid JSON")
    if not isinstance(body, dict):
        return None, _error(400, "BAD_REQUEST", "body must be a JSON object")
    return body, None


def _state(request: Request) -> State:
    state: State = request.app.state.sandbox
    return state


def _ids(request: Request) -> tuple[str, str]:
    return request.path_params["agent"], request.path_params["convo"]


async def _injected(state: State, scripted: bool = True) -> Response | None:
    """A fault to answer instead of the real thing, if one is due. The script is for PATCHes."""
    f = state.faults
    if f.latency_ms:
        await asyncio.sleep(f.latency_ms / 1000)
    step: Any = f.script.popleft() if f.script and scripted else None
    if step is None and f.fail_rate and state.rng.random() < f.fail_rate:
        step = 429 if f.retry_after is not None else 503
    throttled = step is None and f.throttle_rate and state.rng.random() < f.throttle_rate
    if throttled:
        step = 429
    if step is None or step == 200:
        return None
    if step == "timeout":
        await asyncio.sleep(60)
        return _error(504, "TIMEOUT", "took too long")
    status = int(step)
    headers = (
        {"Retry-After": f"{f.retry_after:g}"}
        if f.retry_after is not None and status in (429, 503)
        else {"Retry-After": "1"}
        if throttled
        else {}
    )
    if status == 404:
        return _json({"message": "Conversation not found", "code": "NOT_FOUND"}, 404)
    return _error(status, f"HTTP_{status}", "injected failure", **headers)


def _authorized(state: State, request: Request) -> bool:
    if state.token is None:
        return True
    given = request.headers.get("authorization", "").encode()
    return hmac.compare_digest(given, f"Bearer {state.token}".encode())


async def patch_convo(request: Request) -> Response:
    state = _state(request)
    key = _ids(request)
    received = time.time()
    state.inflight[key] += 1
    if state.inflight[key] > 1:
        state.overlaps += 1
    state.max_inflight = max(state.max_inflight, sum(state.inflight.values()))
    record: dict[str, Any] = {"agent": key[0], "convo": key[1], "received_at": received}
    try:
        answer = await _patch(state, request, key, record)
    finally:
        state.inflight[key] -= 1
    record["status"] = answer.status_code
    record["finished_at"] = time.time()
    state.log.append(record)
    if len(state.log) % FREEZE_EVERY == 0:
        # the log only grows: what it holds leaves the collector's sight, so a full
        # collection's pause (a PATCH answered late, counted as the bridge's latency in the
        # soaks) does not grow with it (collected first: no garbage is frozen for good)
        freeze_startup_heap()
    state.by_status[answer.status_code] += 1
    return answer


async def _patch(
    state: State, request: Request, key: tuple[str, str], record: dict[str, Any]
) -> Response:
    body, bad = await _read_object(request)
    record["body"] = body
    if not _authorized(state, request):
        return _error(401, "UNAUTHORIZED", "missing or wrong bearer token")
    f = state.faults
    step: Any = f.script[0] if f.script else None
    if isinstance(step, dict):
        f.script.popleft()
        if step.get("success") is False:
            code = str(step.get("code", "VALIDATION_FAILED"))
            return _json({"success": False, "error": {"code": code, "message": "declined"}})
        if step.get("hold_s"):
            record["held_s"] = float(step["hold_s"])
            state.held += 1
            await asyncio.sleep(float(step["hold_s"]))
    else:
        fault = await _injected(state)
        if fault is not None:
            return fault
        if f.hold_rate and state.rng.random() < f.hold_rate:
            record["held_s"] = f.hold_s
            state.held += 1
            await asyncio.sleep(f.hold_s)
    if bad is not None or body is None:
        return bad or _error(400, "BAD_REQUEST", "body must be a JSON object")
    extra = set(body) - {"conversation"}
    if extra or "conversation" not in body:
        return _error(400, "BAD_REQUEST", 'expected {"conversation": {...}} and nothing else')
    problem = _check_fields(body["conversation"])
    if problem:
        return _error(400, "BAD_REQUEST", problem)
    convo = state.convos.get(key)
    if convo is None:
        if not state.auto_create:
            return _json({"message": "Conversation not found", "code": "NOT_FOUND"}, 404)
        convo = state.convos[key] = {}
    changed = {k: v for k, v in body["conversation"].items() if convo.get(k) != v}
    convo.update(body["conversation"])
    if changed or "lastModified" not in convo:
        convo["lastModified"] = int(time.time())
    return _json({"success": True, "message": "Conversation updated", "data": convo})


async def get_convo(request: Request) -> Response:
    state = _state(request)
    if not _authorized(state, request):
        return _error(401, "UNAUTHORIZED", "missing or wrong bearer token")
    if state.faults.get_latency_ms:
        await asyncio.sleep(state.faults.get_latency_ms / 1000)
    fault = await _injected(state, scripted=False)
    if fault is not None:
        return fault
    convo = state.convos.get(_ids(request))
    if convo is None:
        if not state.auto_create:
            return _json({"message": "Conversation not found", "code": "NOT_FOUND"}, 404)
        convo = {}  # an auto-created conversation exists, empty, until its first PATCH
    return _json({"success": True, "data": convo})


async def create_convo(request: Request) -> Response:
    state = _state(request)
    raw = await request.body()
    fields: dict[str, Any] = {}
    if raw.strip():
        body, bad = await _read_object(request)
        if bad is not None or body is None:
            return bad or _error(400, "BAD_REQUEST", "expected an object")
        problem = _check_fields(body)
        if problem:
            return _error(400, "BAD_REQUEST", problem)
        fields = body
    state.convos[_ids(request)] = {**fields, "lastModified": int(time.time())}
    return _json({"success": True, "data": state.convos[_ids(request)]}, 201)


async def set_faults(request: Request) -> Response:
    state = _state(request)
    body, bad = await _read_object(request)
    if bad is not None or body is None:
        return bad or _error(400, "BAD_REQUEST", "expected an object")
    f = state.faults
    if "script" in body:
        f.script = deque(body["script"])
    numbers = ("fail_rate", "latency_ms", "throttle_rate", "get_latency_ms", "hold_rate", "hold_s")
    for name in ("retry_after", *numbers):
        if name in body:
            setattr(f, name, body[name])
    return _json(
        {
            "fail_rate": f.fail_rate,
            "latency_ms": f.latency_ms,
            "retry_after": f.retry_after,
            "throttle_rate": f.throttle_rate,
            "get_latency_ms": f.get_latency_ms,
            "hold_rate": f.hold_rate,
            "hold_s": f.hold_s,
            "script": list(f.script),
        }
    )


async def reset_faults(request: Request) -> Response:
    _state(request).faults = Faults()
    return _json({"reset": True})


async def get_log(request: Request) -> Response:
    return _json(_state(request).log)


async def clear_log(request: Request) -> Response:
    state = _state(request)
    state.log.clear()
    state.by_status.clear()
    state.overlaps = state.max_inflight = state.held = 0
    if request.query_params.get("all"):
        state.convos.clear()
    return _json({"cleared": True})


async def stats(request: Request) -> Response:
    state = _state(request)
    return _json(
        {
            "patches": len(state.log),
            "by_status": {str(k): v for k, v in state.by_status.items()},
            "overlaps": state.overlaps,
            "max_inflight": state.max_inflight,
            "held": state.held,
        }
    )


async def all_convos(request: Request) -> Response:
    return _json({f"{a}/{c}": v for (a, c), v in _state(request).convos.items()})


def build_app(
    *,
    fail_rate: float = 0.0,
    latency_ms: float = 0.0,
    retry_after: float | None = None,
    auto_create: bool = False,
    token: str | None = None,
    seed: int | None = None,
) -> Starlette:
    convo = "/agents/{agent}/convos/{convo}"
    app = Starlette(
        routes=[
            Route(convo, patch_convo, methods=["PATCH"]),
            Route(convo, get_convo, methods=["GET"]),
            Route("/_sandbox" + convo, create_convo, methods=["PUT"]),
            Route("/_sandbox/faults", set_faults, methods=["POST"]),
            Route("/_sandbox/faults", reset_faults, methods=["DELETE"]),
            Route("/_sandbox/log", get_log, methods=["GET"]),
            Route("/_sandbox/log", clear_log, methods=["DELETE"]),
            Route("/_sandbox/stats", stats, methods=["GET"]),
            Route("/_sandbox/convos", all_convos, methods=["GET"]),
        ]
    )
    app.state.sandbox = State(
        Faults(fail_rate, latency_ms, retry_after), auto_create, token, random.Random(seed)
    )
    return app


def run(host: str, port: int, **options: Any) -> None:
    import uvicorn

    app = build_app(**options)
    freeze_startup_heap()  # the stand-in's own pauses would count as the bridge's latency
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )
