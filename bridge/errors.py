"""Every error convo-bridge raises on purpose, as one tree.

    BridgeError
    ├── ConfigError           a config key or environment variable is wrong (exit 2)
    ├── RequestError          a request (its source, headers or body) is refused: 4xx
    │   ├── PayloadError      400: not JSON, wrong shape, unknown field, wrong type
    │   ├── SignatureError    401: missing, wrong or stale signature
    │   ├── UnknownSource     404: no such source
    │   ├── RequestTimeout    408: the body did not arrive within [ingest] read_timeout_s
    │   ├── BodyTooLarge      413: over [ingest] max_body_bytes
    │   └── UnsupportedMedia  415: not JSON where the sender sends JSON
    ├── AccessError           the admin surface refuses a request; carries its HTTP status
    │   ├── AdminDisabled     404: no BRIDGE_ADMIN_TOKEN, so the admin surface does not exist
    │   ├── Unauthorized      401: no or a wrong admin token
    │   ├── CsrfRefused       403: signed in by cookie, but the CSRF token is missing or wrong
    │   └── SignedOut         303: the page's visitor is not signed in (back to the sign-in)
    ├── StoreUnavailable      503: Redis cannot be reached
    │   └── NotReplicated     [redis] durability = "replica": the replicas did not acknowledge
    ├── NotFound              404: a dead letter or link that does not exist
    ├── LeaseLost             a worker no longer holds a conversation's lease: it must not send
    └── DeliveryError         a PATCH or GET to Convocore did not succeed
        ├── TargetUnreachable connection error or timeout
        └── TargetRefused     an HTTP error status, with Retry-After and a snippet
            └── TargetDeclined  a 2xx whose body says "success": false, with its error code

Messages say what was wrong and what to do; none of them ever holds a secret. An error
that answers an HTTP request has its `status`, `code` and `headers` on the class; one
handler per class renders it (bridge/refusals.py).
"""

from __future__ import annotations

from typing import ClassVar


class BridgeError(Exception):
    """Base of every error convo-bridge raises on purpose."""

    headers: ClassVar[dict[str, str]] = {}  # sent with the answer, when one is answered


class ConfigError(BridgeError):
    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config: {key}: {problem}")
        self.key = key
        self.problem = problem


class RequestError(BridgeError):
    status = 400
    code = "invalid_request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class PayloadError(RequestError):
    status = 400
    code = "invalid_payload"

    def at(self, prefix: str) -> PayloadError:
        """The same error with `prefix` (an index or a path) in front of what it names."""
        return PayloadError(f"{prefix}{self.detail}" if prefix else self.detail)


class SignatureError(RequestError):
    status = 401
    code = "invalid_signature"


class UnknownSource(RequestError):
    status = 404
    code = "unknown_source"


class RequestTimeout(RequestError):
    status = 408
    code = "request_timeout"


class BodyTooLarge(RequestError):
    status = 413
    code = "payload_too_large"


class UnsupportedMedia(RequestError):
    status = 415
    code = "unsupported_media_type"


class AccessError(BridgeError):
    status = 403
    code = "forbidden"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.code)
        self.detail = detail


class AdminDisabled(AccessError):
    """Answered as if the route did not exist: no detail."""

    status = 404
    code = "not_found"


class Unauthorized(AccessError):
    status = 401
    code = "unauthorized"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "Bearer"}


class CsrfRefused(AccessError):
    status = 403
    code = "forbidden"


class SignedOut(AccessError):
    """The page's buttons and views send a signed-out visitor back to the sign-in form."""

    status = 303
    code = "signed_out"
    headers: ClassVar[dict[str, str]] = {"Location": "/admin/"}


class StoreUnavailable(BridgeError):
    """Redis did not answer; nothing was queued."""

    status = 503
    code = "unavailable"
    headers: ClassVar[dict[str, str]] = {"Retry-After": "5"}


class NotReplicated(StoreUnavailable):
    """The primary ran the write, but fewer replicas than `[redis] replicas` acknowledged it
    in time: it may be lost in a failover, so it is not acknowledged (503)."""


class NotFound(BridgeError):
    status = 404
    code = "not_found"


class LeaseLost(BridgeError):
    """The worker's lease on a conversation ran out or was refused renewal: stop that work."""


class DeliveryError(BridgeError):
    pass


class TargetUnreachable(DeliveryError):
    """No answer. `in_doubt`: the request was (or may have been) sent, so the target may
    still apply it later (an in-doubt write); False when it never left (connect)."""

    def __init__(self, message: str, *, in_doubt: bool = False) -> None:
        super().__init__(message)
        self.in_doubt = in_doubt


class TargetRefused(DeliveryError):
    def __init__(self, status: int, snippet: str, retry_after: str | None = None) -> None:
        super().__init__(f"Convocore answered {status}: {snippet}")
        self.status = status
        self.snippet = snippet
        self.retry_after = retry_after


class TargetDeclined(TargetRefused):
    """A 2xx answer whose body says `"success": false`: nothing was applied."""

    def __init__(
        self, status: int, snippet: str, code: str, retry_after: str | None = None
    ) -> None:
        super().__init__(status, snippet, retry_after)
        self.code = code
