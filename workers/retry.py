"""The one retry policy: given how an attempt failed, retry at a time or dead-letter now.

Pure functions, no I/O: connection errors, timeouts, 408, 425, 429 and 5xx are retried with
exponential backoff and full jitter, never sooner than a Retry-After; any other 4xx is
dead-lettered at once; so is the attempt that reaches `max_attempts`. A 2xx whose body says
`"success": false` is a failure too: retried when its error code says it is temporary, else
dead-lettered (`declined`). An error inside the bridge counts as an attempt like any other
and ends as `worker_error`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

RETRYABLE_STATUSES = frozenset({408, 425, 429})
# words in a declined answer's error code that say "try again later"
TEMPORARY_CODE_WORDS = ("TIMEOUT", "RATE", "TOO_MANY", "UNAVAILABLE", "TEMPORAR", "RETRY", "BUSY")
MAX_RETRY_AFTER_S = 3600.0  # a Retry-After beyond an hour is capped, not obeyed blindly


@dataclass(frozen=True, slots=True)
class Retry:
    delay_s: float


@dataclass(frozen=True, slots=True)
class Dead:
    reason: str


def is_retryable(status: int | None) -> bool:
    """`None` stands for no answer at all (connection error or timeout)."""
    return status is None or status in RETRYABLE_STATUSES or status >= 500


def is_temporary_code(code: str | None) -> bool:
    upper = (code or "").upper()
    return any(word in upper for word in TEMPORARY_CODE_WORDS)


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now_s
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def backoff_s(attempt: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max, initial * 2^(attempt-1))]."""
    ceiling = min(max_s, initial_s * (2 ** min(attempt - 1, 62)))
    return rng.uniform(0, ceiling)


def decide(
    *,
    status: int | None,
    retry_after: str | None,
    attempt: int,
    max_attempts: int,
    initial_s: float,
    max_s: float,
    now_s: float,
    rng: random.Random,
    declined_code: str | None = None,
) -> Retry | Dead:
    """What to do after failed attempt number `attempt` (1-based). `declined_code` is set
    when a 2xx answer said `"success": false` (the code may be '')."""
    if declined_code is not None:
        if not is_temporary_code(declined_code):
            return Dead("declined")
    elif not is_retryable(status):
        return Dead(f"rejected_{status}")
    if attempt >= max_attempts:
        return Dead("max_attempts")
    delay = backoff_s(attempt, initial_s, max_s, rng)
    floor = parse_retry_after(retry_after, now_s)
    if floor is not None:
        delay = max(delay, floor)
    return Retry(delay)


def after_worker_error(
    *, attempt: int, max_attempts: int, initial_s: float, max_s: float, rng: random.Random
) -> Retry | Dead:
    """A bug or an unsendable change inside the bridge: an attempt like any other."""
    if attempt >= max_attempts:
        return Dead("worker_error")
    return Retry(backoff_s(attempt, initial_s, max_s, rng))
