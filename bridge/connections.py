"""What a connection to `serve` may cost before it has sent a request: uvicorn's httptools
protocol, with a bound on the request head's size (431), a deadline for receiving a whole
head (on a new connection and on a kept-alive one alike), and a bound on open connections
per process. Hostile or broken clients (big or slow heads, idle sockets) cannot exhaust
memory or file descriptors, so real webhooks keep being answered.

At the connection bound, a new connection takes the place of the one that has waited
longest for its request head (a slow or idle client); when none is waiting (every
connection is being answered), the new one is answered 503 and closed. Each closing is counted in
`convo_bridge_connections_closed{reason}`; reaching the bound is logged.

On shutdown every request whose bytes arrived is answered (see `shutdown`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bridge import metrics
from bridge.logs import fields

log = logging.getLogger("convo_bridge.ingest")

SHUTDOWN_GRACE_S = 0.5  # on shutdown, how long an idle connection may still start a request
LIMIT_LOG_EVERY_S = 10.0  # "connection limit reached" at most this often


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int
    head_timeout_s: float
    max_connections: int
    keep_alive_s: float = 5.0  # idle between requests (uvicorn's own timer closes it too)


def _answer(status: bytes, code: str, detail: str, extra: bytes = b"") -> bytes:
    """A whole JSON error answer that closes the connection (written before any request
    was read, or instead of reading it)."""
    body = b'{"error":"%s","detail":"%s"}' % (code.encode(), detail.encode())
    return (
        b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"%sconnection: close\r\n\r\n%s" % (status, len(body), extra, body)
    )


FULL = _answer(
    b"503 Service Unavailable",
    "unavailable",
    "every connection of this server is answering a request; retry later",
    b"retry-after: 1\r\n",
)


class Gate:
    """One per process: the open connections, and those waiting for a request head, oldest
    first (a dict keeps insertion order), which a periodic sweep closes past the deadline."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.open: set[GuardedProtocol] = set()
        self.waiting: dict[GuardedProtocol, float] = {}
        self._sweeping = False
        self._logged_at = -math.inf

    def admit(self, conn: GuardedProtocol, loop: asyncio.AbstractEventLoop) -> bool:
        """Count a new connection in; False when it must be closed at once."""
        if not self._sweeping:
            self._sweeping = True
            loop.call_later(self._tick(), self._sweep, loop)
        if len(self.open) >= self.limits.max_connections:
            now = loop.time()
            if now - self._logged_at >= LIMIT_LOG_EVERY_S:
                self._logged_at = now
                log.warning(
                    "connection limit reached",
                    extra=fields(
                        max_connections=self.limits.max_connections,
                        waiting_for_a_head=len(self.waiting),
                    ),
                )
            metrics.CONNECTIONS_CLOSED.labels("connection_limit").inc()
            if not self.waiting:
                return False
            oldest = next(iter(self.waiting))
            oldest.drop()
        self.open.add(conn)
        return True

    def _tick(self) -> float:
        return min(1.0, max(0.05, self.limits.head_timeout_s / 4))

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        # `since`: when the head's deadline started; a kept-alive connection idle between
        # requests is entered keep_alive_s - head_timeout_s off, so the order is not theirs
        cutoff = loop.time() - self.limits.head_timeout_s
        for conn in [c for c, since in self.waiting.items() if since <= cutoff]:
            conn.head_timed_out()
        if self.open:
            loop.call_later(self._tick(), self._sweep, loop)
        else:
            self._sweeping = False


# the scope's extension: True once the request's whole body is in (bridge.bodies reads such
# a body without setting a timer for it)
ARRIVAL = "convo_bridge.body_in"


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol under a `Gate` (set on a subclass by `protocol_class`)."""

    gate: ClassVar[Gate]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # the next bytes belong to a request head
        self._began = False  # some of that head has arrived
        self._head_bytes = 0
        self._closing_down = False
        self._idle = False  # kept alive, between requests: no byte of the next head yet

    # --- the connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.gate.admit(self, self.loop):
            self.transport.write(FULL)
            self.transport.close()
            return
        self._wait_for_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self.gate.open.discard(self)
        self.gate.waiting.pop(self, None)
        super().connection_lost(exc)

    def _wait_for_head(self, idle: bool = False) -> None:
        """The deadline for the next request head starts now; `idle` (kept alive between
        requests): the connection may stay idle keep_alive_s, and the head's deadline
        starts with its first byte."""
        self.gate.waiting.pop(self, None)
        limits = self.gate.limits
        offset = limits.keep_alive_s - limits.head_timeout_s if idle else 0.0
        self.gate.waiting[self] = self.loop.time() + offset
        self._idle = idle

    def drop(self) -> None:
        """Closed to make room for a new connection."""
        self.gate.waiting.pop(self, None)
        self.gate.open.discard(self)
        self.transport.close()

    def head_timed_out(self) -> None:
        self.gate.waiting.pop(self, None)
        if self._busy():  # a pipelined request is being answered: its deadline starts after
            return
        if self._idle:  # kept alive and idle keep_alive_s: closed, as uvicorn's own timer does
            self.transport.close()
            return
        metrics.CONNECTIONS_CLOSED.labels("head_timeout").inc()
        if self._began and self._in_head:
            detail = f"the request head did not arrive within {self.gate.limits.head_timeout_s:g} s"
            self.transport.write(_answer(b"408 Request Timeout", "request_timeout", detail))
        self.transport.close()

    def _busy(self) -> bool:
        return bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)

    # --- bytes in ---------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._idle and data:
            self._wait_for_head()  # the next head has begun: its deadline starts now
        while data and self._in_head and not self.transport.is_closing():
            room = self.gate.limits.max_header_bytes - self._head_bytes
            part, data = data[: room + 1], data[room + 1 :]
            self._head_bytes += len(part)
            super().data_received(part)
            if self._in_head and self._head_bytes > self.gate.limits.max_header_bytes:
                self._refuse_head()
                return
        if data and not self.transport.is_closing():
            super().data_received(data)

    def _refuse_head(self) -> None:
        metrics.CONNECTIONS_CLOSED.labels("headers_too_large").inc()
        limit = self.gate.limits.max_header_bytes
        log.info("refused", extra=fields(status=431, detail=f"request head over {limit} bytes"))
        detail = f"headers too large: the request head is over {limit} bytes"
        self.transport.write(
            _answer(b"431 Request Header Fields Too Large", "headers_too_large", detail)
        )
        self.gate.waiting.pop(self, None)
        self.transport.close()

    # --- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._began = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self.gate.waiting.pop(self, None)
        extensions: Any = self.scope.setdefault("extensions", {})
        extensions[ARRIVAL] = False
        super().on_headers_complete()
        if self._closing_down and self.cycle is not None:
            self.cycle.keep_alive = False

    def on_message_complete(self) -> None:
        extensions: Any = self.scope.get("extensions", {})
        extensions[ARRIVAL] = True
        super().on_message_complete()
        self._in_head, self._began, self._head_bytes = True, False, 0

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self._busy():
            # kept alive between requests: idle up to keep_alive_s (a load balancer holds
            # its upstream connections open), then the next head has the usual deadline
            # from its first byte; the rest of a body the answer did not need has it now
            # (a client trickling it would hold the connection)
            self._wait_for_head(idle=self._in_head)

    # --- shutdown ---------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Called once when the server stops: a request being answered is answered, then the
        connection closes; a request whose head is arriving is read and answered the same
        way (its deadline still holds); an idle connection gets `SHUTDOWN_GRACE_S` for
        bytes already on their way, then closes."""
        self._closing_down = True
        if self._busy():
            if self.cycle is not None:
                self.cycle.keep_alive = False
            return
        if self._began:
            return
        self.loop.call_later(SHUTDOWN_GRACE_S, self._close_if_idle)

    def _close_if_idle(self) -> None:
        if not self._began and not self._busy() and not self.transport.is_closing():
            self.transport.close()


def protocol_class(limits: Limits) -> type[GuardedProtocol]:
    """A protocol class for uvicorn's `http=`, with its own `Gate` (one per server)."""
    return type("GatedProtocol", (GuardedProtocol,), {"gate": Gate(limits)})
