"""The worker's own view of a lease it holds, and the fence checked before every request.

Convocore cannot check a fencing token, so the worker fences itself: just before a GET or a
PATCH it makes sure the lease lasts at least one whole request longer (`request_timeout_s`
plus a margin), renewing it first when it does not. The local deadline is counted on the
monotonic clock from *before* the take or renewal was sent, so it never outlives Redis's
own: a worker paused (SIGSTOP, a long GC) wakes up past its deadline, asks Redis, and stops
if the lease is gone. A failed renewal marks the lease lost; the work stops there.

A pause can still fall between the fence and the socket write; a PATCH that ends after its
lease was lost is then in doubt, and the settle script handles it (the in-doubt writes guarantee).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bridge.errors import LeaseLost
from bridge.store import Work

FENCE_MARGIN_S = 0.5  # beyond request_timeout_s: a renewal round trip and clock slack


@dataclass(slots=True)
class Held:
    """A conversation this worker holds: its work, until when the lease surely lasts
    (monotonic seconds), whether it was lost, and whether a PATCH has left."""

    work: Work
    until: float
    lost: bool = False
    sent: bool = False

    def left_s(self) -> float:
        return self.until - time.monotonic()


Renew = Callable[[Held], Awaitable[bool]]


class Fence:
    """`await fence.check()` before each request; raises LeaseLost when the work must stop."""

    def __init__(self, held: Held, renew: Renew, need_s: float) -> None:
        self.held = held
        self._renew = renew
        self.need_s = need_s

    async def check(self) -> None:
        held = self.held
        if held.lost:
            raise LeaseLost(f"lease of {held.work.ck} lost")
        if held.left_s() >= self.need_s:
            return
        if not await self._renew(held):
            held.lost = True
            raise LeaseLost(f"lease of {held.work.ck} lost (renewal refused)")
        if held.left_s() < self.need_s:  # start-up refuses such a lease_s; never send on it
            raise LeaseLost(f"lease of {held.work.ck} shorter than one request")

    def sending(self) -> None:
        """Call right after the last check before a PATCH: from here it may be applied."""
        self.held.sent = True
