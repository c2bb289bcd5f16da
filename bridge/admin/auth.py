"""Who may use the admin surface: bearer BRIDGE_ADMIN_TOKEN, or the page's sign-in cookie
(an expiring HMAC, never the token) with a CSRF token on every change; and the headers every
admin answer carries.

While no admin token is configured every admin route answers 404, as if it did not exist.
A request authenticated by cookie that changes something must also carry the page's CSRF
token in `X-CSRF-Token` (API) or the form's `csrf` field (page).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

from starlette.requests import Request

from bridge.config import Settings
from bridge.providers.base import same

COOKIE = "cb_admin"
SAFE_METHODS = ("GET", "HEAD")


SESSION_S = 12 * 3600
_EPOCH = re.compile(r"[0-9]{1,12}")  # a sign-in's expiry, epoch seconds


def _session_mac(admin_token: str, expiry: str) -> str:
    return hmac.new(admin_token.encode(), f"session:{expiry}".encode(), hashlib.sha256).hexdigest()


def session_cookie(admin_token: str, now: float | None = None) -> str:
    """`<expiry>.<HMAC of it>`: proves a sign-in without carrying the token itself; expires
    on its own, and changing the admin token ends every session."""
    expiry = str(int((time.time() if now is None else now) + SESSION_S))
    return f"{expiry}.{_session_mac(admin_token, expiry)}"


def valid_session(value: str, admin_token: str) -> bool:
    expiry, _, mac = value.partition(".")
    # ASCII digits only: '²'.isdigit() is true and int('²') raises
    if not admin_token or not _EPOCH.fullmatch(expiry) or int(expiry) < time.time():
        return False
    return same(_session_mac(admin_token, expiry), mac)


def csrf_token(admin_token: str) -> str:
    """Derived from the admin token: only someone signed in can know it."""
    return hmac.new(admin_token.encode(), b"convo-bridge admin csrf", hashlib.sha256).hexdigest()


def page_headers(nonce: str | None) -> dict[str, str]:
    """No framing, no caching, no sniffing; scripts and styles only by nonce."""
    source = f"'nonce-{nonce}'" if nonce else "'none'"
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src {source}; style-src {source}; img-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def authorized(request: Request, settings: Settings) -> str | None:
    """How the request proved it holds the admin token: "bearer", "cookie", or None."""
    token = settings.admin_token
    if not token:
        return None
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and same(token, value.strip()):
        return "bearer"
    if valid_session(request.cookies.get(COOKIE, ""), token):
        return "cookie"
    return None
