"""Property: whatever the arrival order, duplicates, retries and number of workers, each
conversation ends with, per field, the value of its newest event. Two `convo-bridge worker`
processes deliver, against a target that answers some 503s and 429s."""

import random
import time

import httpx
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.changes import version
from tests.conftest import SECRET, wait_until
from tests.signing import signed

T0 = int(time.time() * 1000) - 3_600_000
FIELDS = ["title", "userName", "notes"]

events = st.lists(
    st.tuples(
        st.sampled_from(["c1", "c2", "c3"]),
        st.sampled_from(FIELDS),
        st.integers(0, 50),
        st.text("abcxyz", min_size=1, max_size=4),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=events, seed=st.integers(0, 10**6))
def test_each_field_ends_with_its_newest_value(
    batch, seed, ingest_url, sandbox_url, redis_url, start_worker_process, request
):
    if not getattr(request.node, "_workers", None):
        # a fault script that fails most PATCHes opens the circuit: its cooldown (30 s by
        # default) is not what this property is about, and would outlast the wait below
        fast_probe = "circuit_cooldown_s = 0.5\n"
        request.node._workers = [start_worker_process(fast_probe), start_worker_process(fast_probe)]
    run = f"r{seed}-{time.monotonic_ns()}"
    rng = random.Random(seed)
    sent = [
        (convo, field, at, f"{value}-{i}", f"{run}-{i}")
        for i, (convo, field, at, value) in enumerate(batch)
    ]
    order = sent + rng.sample(sent, k=len(sent) // 3)  # some redeliveries
    rng.shuffle(order)
    httpx.post(
        f"{sandbox_url}/_sandbox/faults",
        json={"script": [rng.choice([200, 200, 503, 429]) for _ in range(10)]},
    )
    for convo, field, at, value, event_id in order:
        body, headers = signed(
            SECRET,
            {"agent_id": run, "convo_id": convo, "occurred_at": T0 + at, "set": {field: value}},
            msg_id=event_id,
        )
        assert (
            httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=headers).status_code
            == 202
        )

    expected = {}
    for convo, field, at, value, event_id in sent:
        key = (convo, field)
        # ties on occurred_at break by event identity, the same way on every worker
        ver = version(T0 + at, "demo", event_id)
        if key not in expected or expected[key][0] < ver:
            expected[key] = (ver, value)

    client = redis.Redis.from_url(redis_url)

    def settled():
        return not client.keys(f"cb:p:{run}/*") and client.zcard("cb:inflight") == 0

    wait_until(settled, timeout_s=30)
    client.close()
    convos = httpx.get(f"{sandbox_url}/_sandbox/convos").json()
    for (convo, field), (_, value) in expected.items():
        assert convos[f"{run}/{convo}"][field] == value
    assert httpx.get(f"{sandbox_url}/_sandbox/stats").json()["overlaps"] == 0
