"""Every error convo-bridge raises on purpose, as one tree.

    BridgeError
    ├── ConfigError           a config key or environment variable is wrong (exit 2)
    ├── RequestError          a webhook request is refused; carries its HTTP status
    │   ├── PayloadError      400: not JSON, wrong shape, unknown field, wrong type
    │   ├── SignatureError    401: missing, wrong or stale signature
    │   ├── UnknownSource     404: no such source
    │   ├── RequestTimeout    408: the body did not arrive within [ingest] read_timeout_s
    │   ├── BodyTooLarge      413: over [ingest] max_body_bytes
    │   └── UnsupportedMedia  415: not JSON where the sender sends JSON
    ├── StoreUnavailable      Redis cannot be reached (ingest answers 503)
    │   └── NotReplicated     [redis] durability = "replica": the replicas did not acknowledge
    ├── NotFound              a dead letter or link that does not exist
    ├── LeaseLost             a worker no longer holds a conversation's lease: it must not send
    └── DeliveryError         a PATCH or GET to Convocore did not succeed
        ├── TargetUnreachable connection error or timeout
        └── TargetRefused     an HTTP error status, with Retry-After and a snippet
            └── TargetDeclined  a 2xx whose body says "success": false, with its error code

Messages say what was wrong and what to do; none of them ever holds a secret.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error convo-bridge raises on purpose."""


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


class StoreUnavailable(BridgeError):
    """Redis did not answer; nothing was queued."""


class NotReplicated(StoreUnavailable):
    """The primary ran the write, but fewer replicas than `[redis] replicas` acknowledged it
    in time: it may be lost in a failover, so it is not acknowledged (503)."""


class NotFound(BridgeError):
    pass


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
