"""One Convocore account's own gate (lua/gate.lua): its rate limit and its circuit stand
apart from every other account's."""

from __future__ import annotations

import asyncio

from bridge.config import DeliverySettings
from bridge.store import Store

D = DeliverySettings(circuit_window=2, circuit_failure_ratio=0.5, circuit_cooldown_s=60.0)


def run(url: str, body):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        store = Store(url)
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def test_an_accounts_rate_limit_spaces_its_sends_and_no_other_accounts(redis_url: str) -> None:
    async def go(store: Store) -> tuple[list[int], int]:
        asks = [await store.gate("na", rate=1.0, probe_ms=3000) for _ in range(3)]
        other = await store.gate("eu", rate=1.0, probe_ms=3000)
        return asks, other

    asks, other = run(redis_url, go)
    assert asks[0] == 0 and other == 0
    assert all(0 < wait_ms <= 5000 for wait_ms in asks[1:])  # a delay, on Redis's clock


def test_an_accounts_failures_open_its_circuit_alone_and_a_probe_closes_it(
    redis_url: str,
) -> None:
    async def go(store: Store) -> tuple[str, int, int, int, str, int]:
        await store.gate_record("na", "fail", D)
        opened = await store.gate_record("na", "fail", D)
        held = await store.gate("na", rate=0, probe_ms=3000)
        other = await store.gate("eu", rate=0, probe_ms=3000)
        await (await store._data(0)).hset("cb:acct:na:circuit", "until", 0)  # cooldown passed
        probe = await store.gate("na", rate=0, probe_ms=3000)
        closed = await store.gate_record("na", "ok", D)
        after = await store.gate("na", rate=0, probe_ms=3000)
        return opened, held, other, probe, closed, after

    opened, held, other, probe, closed, after = run(redis_url, go)
    assert opened == "open"
    assert 50_000 < held <= 60_000  # until the cooldown ends
    assert other == 0
    assert probe == 0 and closed == "closed" and after == 0


def test_verdicts_recorded_together_count_as_recorded_one_at_a_time(redis_url: str) -> None:
    """Concurrent records share one call (lua/circuit.lua's circuit_record_all): successes
    alone are one push, bounded like single ones; a failure among them goes the exact
    one-at-a-time way, and opens the circuit as the window says."""

    async def go(store: Store) -> tuple[list[str], list[str], list[str]]:
        oks = await asyncio.gather(*(store.gate_record("na", "ok", D) for _ in range(50)))
        recent = await (await store._data(0)).lrange("cb:acct:na:recent", 0, -1)
        mixed = await asyncio.gather(
            *(store.gate_record("na", v, D) for v in ("ok", "ok", "fail", "fail", "ok"))
        )
        return oks, recent, mixed

    oks, recent, mixed = run(redis_url, go)
    assert set(oks) == {"closed"}
    assert recent and set(recent) == {"0"} and len(recent) <= 2 * D.circuit_window
    assert mixed[-1] == "open"  # two failures in a window of two: open, whatever followed
