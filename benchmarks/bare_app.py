"""The baseline for the ingest benchmark: a bare Starlette app that only checks the Standard
Webhooks HMAC and LPUSHes the body. convo-bridge's `serve` is measured against it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

KEY = base64.b64decode(os.environ["DEMO_SECRET"].removeprefix("whsec_"))
r = aioredis.Redis.from_url(os.environ["REDIS_URL"])


async def hook(request: Request) -> Response:
    body = await request.body()
    h = request.headers
    signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    if not any(
        hmac.compare_digest(expected, s.partition(",")[2]) for s in h["webhook-signature"].split()
    ):
        return JSONResponse({"error": "invalid_signature"}, status_code=401)
    await r.lpush("bare:queue", body)
    return JSONResponse({"accepted": 1}, status_code=202)


app = Starlette(routes=[Route("/webhooks/{source}", hook, methods=["POST"])])
