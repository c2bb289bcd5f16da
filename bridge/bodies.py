"""Reading a request body within a size limit and a time limit, for webhooks and the admin
surface alike: a body that trickles in (a slow-loris client) holds a connection and a task
for as long as it is let, so every route that reads a body goes through here."""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from bridge.connections import ARRIVAL
from bridge.errors import BodyTooLarge, PayloadError, RequestTimeout


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The body, refused as soon as it passes `limit` bytes (never read whole first), or
    when it has not arrived whole within `timeout_s` (408)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        digits = declared.strip()
        if not digits.isascii() or not digits.isdigit():
            raise PayloadError("content-length: expected a number of bytes")
        if len(digits) > 18 or int(digits) > limit:  # (int() of 4,300+ digits raises)
            raise BodyTooLarge(f"body is {digits[:20]} bytes; the limit is {limit}")
    if request.scope.get("extensions", {}).get(ARRIVAL):  # all in already (serve's own
        return await _read(request, limit)  # protocol says so): no timer to set and cancel
    try:
        async with asyncio.timeout(timeout_s):
            return await _read(request, limit)
    except TimeoutError:
        raise RequestTimeout(f"the body did not arrive within {timeout_s:g} s") from None


async def _read(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
