"""GroupCommit: concurrent callers share a send, each gets its own answers, errors reach all."""

from __future__ import annotations

import asyncio

import pytest

from bridge.store.group_commit import GroupCommit


def test_concurrent_callers_share_sends_and_get_their_own_answers() -> None:
    sends: list[list[int]] = []

    async def send(items: list[int]) -> list[int]:
        sends.append(items)
        await asyncio.sleep(0.005)
        return [i * 10 for i in items]

    async def main() -> list[object]:
        group: GroupCommit[int, int] = GroupCommit(send, max_items=50, max_inflight=2)
        return await asyncio.gather(*(group.submit([i, i + 1000]) for i in range(100)))

    answers = asyncio.run(main())
    assert answers == [[i * 10, (i + 1000) * 10] for i in range(100)]
    assert len(sends) < 100  # shared
    assert max(len(s) for s in sends) <= 50  # bounded
    assert sorted(x for s in sends for x in s) == sorted(
        x for i in range(100) for x in (i, i + 1000)
    )  # every item sent exactly once


def test_a_lone_caller_is_sent_at_once() -> None:
    async def send(items: list[str]) -> list[str]:
        return [s.upper() for s in items]

    async def main() -> object:
        group: GroupCommit[str, str] = GroupCommit(send)
        return await asyncio.wait_for(group.submit(["a"]), 0.5)

    assert asyncio.run(main()) == ["A"]


def test_a_failed_send_fails_every_caller_in_it_and_later_sends_still_work() -> None:
    calls = 0

    async def send(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.005)
        if calls == 1:
            raise ConnectionError("redis down")
        return items

    async def main() -> tuple[list[object], object]:
        group: GroupCommit[int, int] = GroupCommit(send, max_inflight=1)
        first = await asyncio.gather(*(group.submit([i]) for i in range(5)), return_exceptions=True)
        return first, await group.submit([7])

    first, later = asyncio.run(main())
    assert all(isinstance(r, ConnectionError) for r in first)
    assert later == [7]


def test_a_batch_larger_than_max_items_is_still_sent_whole() -> None:
    sends: list[list[int]] = []

    async def send(items: list[int]) -> list[int]:
        sends.append(items)
        return items

    async def main() -> object:
        group: GroupCommit[int, int] = GroupCommit(send, max_items=3)
        return await group.submit(list(range(10)))

    assert asyncio.run(main()) == list(range(10))
    assert sends == [list(range(10))]  # one request's events stay in one atomic send


@pytest.mark.parametrize("inflight", [1, 3])
def test_never_more_sends_in_flight_than_allowed(inflight: int) -> None:
    now = peak = 0

    async def send(items: list[int]) -> list[int]:
        nonlocal now, peak
        now += 1
        peak = max(peak, now)
        await asyncio.sleep(0.002)
        now -= 1
        return items

    async def main() -> None:
        group: GroupCommit[int, int] = GroupCommit(send, max_items=1, max_inflight=inflight)
        await asyncio.gather(*(group.submit([i]) for i in range(30)))

    asyncio.run(main())
    assert peak == inflight


def test_callers_queued_behind_a_failed_send_fail_at_once() -> None:
    sends = 0

    async def send(items: list[int]) -> list[int]:
        nonlocal sends
        sends += 1
        await asyncio.sleep(0.05)
        raise TimeoutError("redis stalled")

    async def main() -> list[object]:
        group: GroupCommit[int, int] = GroupCommit(send, max_items=1, max_inflight=1)
        return await asyncio.gather(*(group.submit([i]) for i in range(20)), return_exceptions=True)

    started = asyncio.run(asyncio.wait_for(main(), 2))
    assert all(isinstance(r, TimeoutError) for r in started)
    assert sends == 1  # not twenty timeouts one after another


def test_too_few_answers_fail_the_batch_instead_of_miscounting() -> None:
    async def send(items: list[int]) -> list[int]:
        return items[:1]

    async def main() -> list[object]:
        group: GroupCommit[int, int] = GroupCommit(send)
        return await asyncio.gather(*(group.submit([i]) for i in range(3)), return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(main()))


def test_a_cancelled_send_leaves_no_caller_waiting() -> None:
    async def send(items: list[int]) -> list[int]:
        raise asyncio.CancelledError

    async def main() -> list[object]:
        group: GroupCommit[int, int] = GroupCommit(send, max_items=1, max_inflight=1)
        return await asyncio.wait_for(
            asyncio.gather(*(group.submit([i]) for i in range(3)), return_exceptions=True), 1
        )

    results = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) for r in results)
