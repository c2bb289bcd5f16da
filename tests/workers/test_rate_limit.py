"""rate_limit_per_s holds across every worker, fractional rates included."""

import itertools
import time

import httpx

from tests.conftest import SECRET, wait_until
from tests.signing import signed

T0 = int(time.time() * 1000) - 60_000


def test_half_a_patch_per_second_is_one_every_two_seconds_across_workers(
    make_settings, ingest_url, sandbox_url, start_worker
):
    settings = make_settings("rate_limit_per_s = 0.5\n")
    for i in range(3):
        body, headers = signed(
            SECRET, {"agent_id": "a", "convo_id": f"c{i}", "occurred_at": T0, "set": {"title": "t"}}
        )
        assert (
            httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=headers).status_code
            == 202
        )
    start_worker(settings)
    start_worker(settings)
    log = wait_until(
        lambda: (p := httpx.get(f"{sandbox_url}/_sandbox/log").json()) and len(p) == 3 and p,
        timeout_s=15,
    )
    times = sorted(p["received_at"] for p in log)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1.9, gaps
