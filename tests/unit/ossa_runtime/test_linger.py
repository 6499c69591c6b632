"""Linger: a round waits only while rounds keep coming (or always, with an infinite window)."""

from __future__ import annotations

import asyncio
import math

from ossa_runtime.linger import Linger


async def test_an_idle_round_goes_at_once() -> None:
    linger = Linger(seconds=60.0, busy_window=0.005)
    await asyncio.wait_for(linger.wait(), 5)  # the first round: nothing came before it
    assert linger.waits == 0


async def test_a_round_right_after_another_waits() -> None:
    linger = Linger(seconds=0.01, busy_window=60.0)
    await linger.wait()
    loop = asyncio.get_running_loop()
    began = loop.time()
    await linger.wait()
    assert linger.waits == 1
    assert loop.time() - began >= 0.009  # the loop's clock: the sleep ran its length


async def test_a_round_after_a_quiet_spell_goes_at_once() -> None:
    linger = Linger(seconds=60.0, busy_window=0.01)
    await linger.wait()
    await asyncio.sleep(0.05)  # longer than the busy window
    await asyncio.wait_for(linger.wait(), 5)
    assert linger.waits == 0


async def test_an_infinite_window_waits_before_every_round() -> None:
    linger = Linger(seconds=0.001, busy_window=math.inf)
    for _ in range(3):
        await linger.wait()
        await asyncio.sleep(0.02)
    assert linger.waits == 3


async def test_zero_seconds_never_waits() -> None:
    linger = Linger(seconds=0.0, busy_window=math.inf)
    for _ in range(3):
        await linger.wait()
    assert linger.waits == 0


async def test_cut_ends_a_wait_at_once() -> None:
    linger = Linger(seconds=60.0, busy_window=math.inf)
    waiting = asyncio.create_task(linger.wait())
    await asyncio.sleep(0.01)
    linger.cut()
    await asyncio.wait_for(waiting, 5)
    assert linger.waits == 1
    linger.cut()  # nothing waiting: no effect
