"""Sign requests the way senders do, for tests and benchmarks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from typing import Any

import orjson


def standard_headers(
    secret: str, body: bytes, msg_id: str | None = None, ts: int | None = None
) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = int(time.time()) if ts is None else ts
    key = base64.b64decode(secret.removeprefix("whsec_"))
    sig = base64.b64encode(
        hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": f"v1,{sig}",
    }


def signed(secret: str, payload: Any, **kw: Any) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(payload)
    return body, standard_headers(secret, body, **kw)
