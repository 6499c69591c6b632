"""The group commit's batching: a lone call, or one call after another, goes at once; calls arriving
while a flush is in flight share the next one (which lingers a moment for more); a full batch does
not linger; stop commits the queue.
The flush here is a fake (no database): tests/integration/orchestrator_svc/test_batches.py runs
the real transactions on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import pytest

from orchestrator_svc.batcher import GroupCommit


class Recorder:
    """A flush that records each batch and can be held open, like a transaction in flight."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        await self.gate.wait()
        return [ValueError(f"item {i}") if i < 0 else i * 10 for i in items]


async def arrive_during_a_flush(group: GroupCommit[int, int], flush: Recorder,
                                items: list[int]) -> list[asyncio.Future[int]]:  # fmt: skip
    """Submit 1 and, while its flush is in flight, `items`; return their futures once 1 committed."""
    flush.gate.clear()
    first = group.submit_nowait(1)
    await asyncio.sleep(0.01)  # the first flush is in flight
    rest = [group.submit_nowait(i) for i in items]
    flush.gate.set()
    assert await asyncio.wait_for(first, 5) == 10
    return rest


async def test_a_lone_call_does_not_linger() -> None:
    flush = Recorder()
    group: GroupCommit[int, int] = GroupCommit("t", flush, linger=60.0)
    assert await asyncio.wait_for(group.submit(1), 5) == 10
    await group.stop()


async def test_one_call_after_another_never_lingers() -> None:
    flush = Recorder()
    group: GroupCommit[int, int] = GroupCommit("t", flush, linger=60.0)
    for i in range(1, 6):  # each call comes right after the last one's answer: nothing to wait for
        assert await asyncio.wait_for(group.submit(i), 5) == i * 10
    assert flush.batches == [[1], [2], [3], [4], [5]]
    await group.stop()


async def test_calls_arriving_while_a_flush_is_in_flight_share_the_next_one() -> None:
    flush = Recorder()
    group: GroupCommit[int, int] = GroupCommit("t", flush, linger=0.002)
    flush.gate.clear()  # the first flush is "in its transaction"
    first = group.submit_nowait(1)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    rest = [group.submit_nowait(i) for i in range(2, 6)]
    flush.gate.set()
    assert await asyncio.wait_for(asyncio.gather(first, *rest), 5) == [10, 20, 30, 40, 50]
    assert flush.batches == [[1], [2, 3, 4, 5]]
    await group.stop()


async def test_after_a_busy_flush_the_next_lingers_for_more() -> None:
    flush = Recorder()
    group: GroupCommit[int, int] = GroupCommit("t", flush, linger=0.2)
    [second] = await arrive_during_a_flush(group, flush, [2])  # the next flush lingers
    await asyncio.sleep(0.01)  # within the linger: joins the same batch
    third = group.submit_nowait(3)
    assert list(await asyncio.wait_for(asyncio.gather(second, third), 5)) == [20, 30]
    assert flush.batches == [[1], [2, 3]]
    await group.stop()


async def test_a_full_batch_does_not_linger() -> None:
    flush = Recorder()
    group: GroupCommit[int, int] = GroupCommit("t", flush, max_items=3, linger=60.0)
    rest = await arrive_during_a_flush(group, flush, [2, 3, 4])  # a full batch behind the first flush
    assert await asyncio.wait_for(asyncio.gather(*rest), 5) == [20, 30, 40]
    assert flush.batches == [[1], [2, 3, 4]]
    await group.stop()


async def test_one_bad_item_fails_alone() -> None:
    flush = Recorder()
    group: GroupCommit[int, int] = GroupCommit("t", flush)
    flush.gate.clear()
    futures = [group.submit_nowait(i) for i in (1, -2, 3)]
    flush.gate.set()
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    assert outcomes[0] == 10 and outcomes[2] == 30
    assert isinstance(outcomes[1], ValueError) and "item -2" in str(outcomes[1])
    await group.stop()


async def test_a_deadlock_retries_the_batch_as_is() -> None:
    calls: list[list[int]] = []

    async def flaky(items: list[int]) -> Sequence[int | BaseException]:
        calls.append(list(items))
        if len(calls) == 1:
            raise asyncpg.DeadlockDetectedError("deadlock detected")
        return list(items)

    group: GroupCommit[int, int] = GroupCommit("t", flaky)
    assert await asyncio.wait_for(group.submit(7), 5) == 7
    assert calls == [[7], [7]]
    await group.stop()


async def test_stop_commits_what_is_queued_without_lingering() -> None:
    flush = Recorder()
    group: GroupCommit[int, int] = GroupCommit("t", flush, linger=60.0)
    queued = await arrive_during_a_flush(group, flush, [2, 3])  # the next flush will linger a minute
    await asyncio.sleep(0.01)
    await asyncio.wait_for(group.stop(), 5)  # cuts the linger short and commits what is queued
    assert [f.result() for f in queued] == [20, 30]
    assert flush.batches == [[1], [2, 3]]
    await group.stop()  # idempotent


@pytest.mark.parametrize("linger", [0.0, 0.002])
async def test_many_concurrent_callers_each_get_their_own_result(linger: float) -> None:
    flush = Recorder()
    group: GroupCommit[int, int] = GroupCommit("t", flush, max_items=50, linger=linger)
    results = await asyncio.wait_for(asyncio.gather(*(group.submit(i) for i in range(500))), 10)
    assert results == [i * 10 for i in range(500)]
    assert sorted(i for batch in flush.batches for i in batch) == list(range(500))
    assert all(len(batch) <= 50 for batch in flush.batches)
    await group.stop()
