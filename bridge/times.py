"""Times as people read them: UTC ISO 8601 out, ISO 8601 or a span ("30m", "2h") in.

Every time shown to a person (the CLI, the admin page, RQ's tools) goes through `iso`, so
none of them prints epoch milliseconds.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from bridge.errors import PayloadError

_SPAN = re.compile(r"^([0-9]{1,9})\s*(s|m|h|d)$")
_SPAN_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def iso(ms: int | float | None) -> str:
    """`2026-11-29T19:28:03Z` (with `.123` when the milliseconds are not 0); "-" for none."""
    if ms is None:
        return "-"
    text = datetime.fromtimestamp(int(ms) / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return (text[:-7] if int(ms) % 1000 == 0 else text[:-3]) + "Z"


def since_ms(text: str, name: str = "--since", now_ms: int | None = None) -> int:
    """Epoch milliseconds of `text`: a span back from now (`90s`, `30m`, `2h`, `7d`), epoch
    milliseconds, or an ISO 8601 time (a time without a zone is UTC)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    span = _SPAN.match(text.strip().lower())
    if span:
        return now - int(span.group(1)) * _SPAN_MS[span.group(2)]
    if text.strip().isascii() and text.strip().isdigit() and len(text.strip()) <= 15:
        return int(text.strip())
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise PayloadError(
            f"{name}: expected a span such as 30m, 2h or 7d, epoch ms, or an ISO 8601 time such as "
            f"2026-11-29T18:00Z; got {text[:40]!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
