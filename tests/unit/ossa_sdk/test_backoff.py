"""Reconnect backoff and the slot limiter."""

from __future__ import annotations

import asyncio
import random

import pytest

from ossa_sdk import Backoff
from ossa_sdk.slots import Slots


def test_backoff_doubles_from_0_2_to_5_seconds() -> None:
    b = Backoff(rand=lambda: 0.0)
    assert [b.next() for _ in range(8)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]


def test_backoff_jitter_shortens_delays_by_at_most_a_fifth() -> None:
    b = Backoff(rand=lambda: 1.0)
    assert [round(b.next(), 6) for _ in range(3)] == [0.16, 0.32, 0.64]
    rng = random.Random(7)
    b = Backoff(rand=rng.random)
    nominal = [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    delays = [b.next() for _ in nominal]
    assert all(0.8 * n <= d <= n for d, n in zip(delays, nominal, strict=True))
    assert len(set(delays)) == len(delays)


def test_backoff_reset_starts_again() -> None:
    b = Backoff(rand=lambda: 0.0)
    for _ in range(5):
        b.next()
    b.reset()
    assert b.next() == 0.2


@pytest.mark.parametrize("kwargs", [{"initial": 0}, {"initial": 6.0}, {"factor": 0.5}, {"jitter": 1.0}])
def test_backoff_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)  # type: ignore[arg-type]


async def test_slots_limit_and_resize() -> None:
    slots = Slots(2)
    await slots.acquire()
    await slots.acquire()
    third = asyncio.create_task(slots.acquire())
    fourth = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    assert not third.done() and slots.in_use == 2
    slots.release()
    await asyncio.sleep(0)
    assert third.done() and not fourth.done() and slots.in_use == 2
    slots.resize(3)
    await asyncio.sleep(0)
    assert fourth.done() and slots.in_use == 3
    slots.resize(1)
    for _ in range(3):
        slots.release()
    assert slots.in_use == 0


async def test_a_cancelled_waiter_gives_its_place_up() -> None:
    slots = Slots(1)
    await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    later = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    slots.release()
    await asyncio.sleep(0)
    assert later.done() and slots.in_use == 1
