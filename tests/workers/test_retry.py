import random
from email.utils import formatdate

import pytest

from workers.retry import Dead, Retry, backoff_s, decide, is_retryable, parse_retry_after

NOW = 1_764_000_000.0


def _decide(status, attempt=1, retry_after=None, max_attempts=10, seed=1):
    return decide(
        status=status,
        retry_after=retry_after,
        attempt=attempt,
        max_attempts=max_attempts,
        initial_s=1.0,
        max_s=300.0,
        now_s=NOW,
        rng=random.Random(seed),
    )


@pytest.mark.parametrize("status", [None, 408, 425, 429, 500, 502, 503, 504, 599])
def test_transient_failures_are_retried(status):
    assert is_retryable(status)
    assert isinstance(_decide(status), Retry)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422])
def test_other_client_errors_are_dead_lettered_at_once(status):
    assert _decide(status) == Dead(f"rejected_{status}")


def test_the_last_allowed_attempt_dead_letters():
    assert isinstance(_decide(503, attempt=9, max_attempts=10), Retry)
    assert _decide(503, attempt=10, max_attempts=10) == Dead("max_attempts")


def test_backoff_is_full_jitter_under_an_exponential_ceiling():
    rng = random.Random(7)
    for attempt in range(1, 15):
        ceiling = min(300.0, 2 ** (attempt - 1))
        samples = [backoff_s(attempt, 1.0, 300.0, rng) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8  # it spreads over the whole range
        assert min(samples) < ceiling * 0.2


def test_never_sooner_than_retry_after_seconds():
    for seed in range(50):
        decision = _decide(429, retry_after="7", seed=seed)
        assert isinstance(decision, Retry) and decision.delay_s >= 7


def test_retry_after_as_http_date():
    header = formatdate(NOW + 30, usegmt=True)
    assert parse_retry_after(header, NOW) == pytest.approx(30, abs=1)
    decision = _decide(503, retry_after=header)
    assert isinstance(decision, Retry) and decision.delay_s >= 29


@pytest.mark.parametrize("value", ["", "soon", "NaN", None])
def test_unreadable_retry_after_is_ignored(value):
    assert parse_retry_after(value, NOW) is None


def test_retry_after_in_the_past_or_huge_is_clamped():
    assert parse_retry_after("-5", NOW) == 0
    assert parse_retry_after("99999999", NOW) == 3600
