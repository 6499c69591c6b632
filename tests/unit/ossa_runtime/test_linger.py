"""Linger (the Work streams' write coalescing): a write waits only while writes keep coming."""

from __future__ import annotations

import asyncio

from ossa_runtime.linger import Linger


async def test_an_idle_write_goes_at_once() -> None:
    linger = Linger(seconds=60.0, busy_window=0.005)
    await asyncio.wait_for(linger.wait(), 5)  # the first write: nothing came before it


async def test_a_write_right_after_another_waits() -> None:
    linger = Linger(seconds=0.01, busy_window=60.0)
    await linger.wait()
    loop = asyncio.get_running_loop()
    began = loop.time()
    await linger.wait()
    assert loop.time() - began >= 0.009  # the loop's clock: the sleep ran its length


async def test_a_write_after_a_quiet_spell_goes_at_once() -> None:
    linger = Linger(seconds=60.0, busy_window=0.01)
    await linger.wait()
    await asyncio.sleep(0.05)  # longer than the busy window
    await asyncio.wait_for(linger.wait(), 5)
