"""`Group` (registry_svc.groups) without servers: batching while a flush is in flight, per-item
outcomes, a failing flush, nothing left behind between drains, lingering only when callers are
concurrent."""

from __future__ import annotations

import asyncio

import pytest

from ossa_runtime.errors import AlreadyExists
from registry_svc.groups import Group


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()

    async def flush(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(items)
        await self.release.wait()
        return [AlreadyExists(f"item {i} is taken") if i < 0 else i * 10 for i in items]


async def test_alone_an_item_is_flushed_at_once_in_a_batch_of_one() -> None:
    rec = Recorder()
    group: Group[int, int] = Group("t", rec.flush)
    assert await group.submit(1) == 10
    assert await group.submit(2) == 20
    assert rec.batches == [[1], [2]]


async def test_items_arriving_during_a_flush_share_the_next_one() -> None:
    rec = Recorder()
    rec.release.clear()
    group: Group[int, int] = Group("t", rec.flush, max_items=3)
    first = asyncio.ensure_future(group.submit(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(group.submit(i)) for i in range(2, 7)]
    await asyncio.sleep(0)
    rec.release.set()
    assert await first == 10
    assert await asyncio.gather(*rest) == [20, 30, 40, 50, 60]
    assert rec.batches == [[1], [2, 3, 4], [5, 6]]  # at most max_items per flush
    assert (group.flushes, group.items) == (3, 6)


async def test_each_caller_gets_its_own_outcome() -> None:
    rec = Recorder()
    group: Group[int, int] = Group("t", rec.flush)
    outcomes = await asyncio.gather(*(group.submit(i) for i in (1, -2, 3)), return_exceptions=True)
    assert outcomes[0] == 10 and outcomes[2] == 30
    assert isinstance(outcomes[1], AlreadyExists) and "item -2" in str(outcomes[1])


async def test_a_failing_flush_fails_every_item_of_its_batch_only() -> None:
    calls = 0

    async def flaky(items: list[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database away")
        return list(items)

    group: Group[int, int] = Group("t", flaky)
    with pytest.raises(ConnectionError):
        await group.submit(1)
    assert await group.submit(2) == 2


async def test_a_wrong_number_of_outcomes_is_an_error_for_every_item() -> None:
    async def short(items: list[int]) -> list[int | BaseException]:
        return []

    group: Group[int, int] = Group("t", short)
    with pytest.raises(RuntimeError, match="0 outcomes for 1 items"):
        await group.submit(1)


async def test_no_item_is_left_behind_when_a_drain_ends() -> None:
    rec = Recorder()
    group: Group[int, int] = Group("t", rec.flush)
    for round_ in range(20):  # submit just as the previous drain finishes
        assert await asyncio.gather(group.submit(round_), group.submit(round_ + 1)) == [round_ * 10, round_ * 10 + 10]


def test_max_items_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_items"):
        Group("t", Recorder().flush, max_items=0)
    with pytest.raises(ValueError, match="linger"):
        Group("t", Recorder().flush, linger=-1)


async def arrive_during_a_flush(group: Group[int, int], rec: Recorder, items: list[int]) -> list[asyncio.Future[int]]:
    """Submit 1 and, while its flush is in flight, `items`; return their futures once 1 is flushed."""
    rec.release.clear()
    first = asyncio.ensure_future(group.submit(1))
    await asyncio.sleep(0.01)  # the first flush is in flight
    rest = [asyncio.ensure_future(group.submit(i)) for i in items]
    await asyncio.sleep(0)
    rec.release.set()
    assert await asyncio.wait_for(first, 5) == 10
    return rest


async def test_one_call_after_another_never_lingers() -> None:
    rec = Recorder()
    group: Group[int, int] = Group("t", rec.flush, linger=60.0)
    for i in range(1, 4):
        assert await asyncio.wait_for(group.submit(i), 5) == i * 10
    assert rec.batches == [[1], [2], [3]]


async def test_after_a_busy_flush_the_next_lingers_for_more() -> None:
    rec = Recorder()
    group: Group[int, int] = Group("t", rec.flush, linger=0.2)
    [second] = await arrive_during_a_flush(group, rec, [2])  # the next flush lingers
    await asyncio.sleep(0.01)  # within the linger: joins the same batch
    third = asyncio.ensure_future(group.submit(3))
    assert list(await asyncio.wait_for(asyncio.gather(second, third), 5)) == [20, 30]
    assert rec.batches == [[1], [2, 3]]


async def test_a_full_batch_does_not_linger() -> None:
    rec = Recorder()
    group: Group[int, int] = Group("t", rec.flush, max_items=2, linger=60.0)
    rest = await arrive_during_a_flush(group, rec, [2, 3])  # a full batch behind the first flush
    assert await asyncio.wait_for(asyncio.gather(*rest), 5) == [20, 30]
    assert rec.batches == [[1], [2, 3]]


async def test_a_drain_cancelled_while_it_lingers_cancels_its_callers() -> None:
    rec = Recorder()
    group: Group[int, int] = Group("t", rec.flush, linger=60.0)
    [queued] = await arrive_during_a_flush(group, rec, [2])
    await asyncio.sleep(0.01)  # the drain now lingers before flushing [2]
    for task in list(group._tasks):
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued


async def test_callers_are_cancelled_rather_than_left_waiting_if_the_drain_is_cancelled() -> None:
    rec = Recorder()
    rec.release.clear()
    group: Group[int, int] = Group("t", rec.flush)
    first = asyncio.ensure_future(group.submit(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    queued = asyncio.ensure_future(group.submit(2))
    await asyncio.sleep(0)
    for task in list(group._tasks):
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    with pytest.raises(asyncio.CancelledError):
        await queued
    rec.release.set()
    assert await group.submit(3) == 30  # a new drain starts for the next caller
