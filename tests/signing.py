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


def _b64(key: str, msg: bytes, algo: str = "sha256") -> str:
    return base64.b64encode(hmac.new(key.encode(), msg, algo).digest()).decode()


def sign_as(
    kind: str, secret: str, body: bytes, url: str, event: str = "", now: float | None = None
) -> dict[str, str]:
    """Headers the sender of `kind` would send for `body` posted to `url` at `now`."""
    now = time.time() if now is None else now
    h = {"content-type": "application/json"}
    if kind == "standard":
        return standard_headers(secret, body, ts=int(now))
    if kind == "zendesk":
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        h |= {
            "x-zendesk-webhook-signature": _b64(secret, ts.encode() + body),
            "x-zendesk-webhook-signature-timestamp": ts,
        }
    elif kind == "intercom":
        h["x-hub-signature"] = "sha1=" + hmac.new(secret.encode(), body, "sha1").hexdigest()
    elif kind == "hubspot":
        ts = str(int(now * 1000))
        h |= {
            "x-hubspot-signature-v3": _b64(secret, b"POST" + url.encode() + body + ts.encode()),
            "x-hubspot-request-timestamp": ts,
        }
    elif kind == "front":
        ts = str(int(now * 1000))
        h |= {
            "x-front-signature": _b64(secret, ts.encode() + b":" + body),
            "x-front-request-timestamp": ts,
        }
    elif kind == "front_rule":  # Front rule webhooks: base64 HMAC-SHA1 of the body
        h["x-front-signature"] = _b64(secret, body, "sha1")
    elif kind == "helpscout":
        h |= {"x-helpscout-signature": _b64(secret, body, "sha1"), "x-helpscout-event": event}
    elif kind == "freshdesk":
        h["x-bridge-secret"] = secret
    elif kind == "generic":
        h["x-signature"] = "sha256=" + hmac.new(secret.encode(), body, "sha256").hexdigest()
    return h
