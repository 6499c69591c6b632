"""One background task that drains a queue while it holds work, and stops only between drains.

The group commits (batcher.py) and the after-commit writer (effects.py) use it: the task starts
with the first item, `kick()` wakes it for each new one, and it calls `drain()` until nothing is
pending. `stop()` lets the drain in progress (a transaction, a Redis call) finish and what is
queued be drained, then ends the task: never cancelled halfway, which would leave a connection
half-open. Idempotent.

Each drain has a fixed cost (a statement, a round trip) shared by what it holds, so a short wait
before it makes drains fewer and larger (`linger` seconds). When no caller waits for the drain
(the after-commit writer: `linger_first`), it waits before every drain. When callers do (the
group commits), it waits only before a drain that follows another at once, that is when work
arrived while the last drain ran: concurrent callers share the next drain, while a lone caller,
or one caller making one call after another, never waits. No wait when `full()` says the next
drain is full already, or while stopping (`stop()` cuts a wait short).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Drainer:
    def __init__(self, name: str, drain: Callable[[], Awaitable[None]], pending: Callable[[], bool],
                 linger: float = 0.0, full: Callable[[], bool] = lambda: False,
                 linger_first: bool = False) -> None:  # fmt: skip
        self.name = name
        self._drain = drain
        self._pending = pending
        self._linger = linger
        self._full = full
        self._linger_first = linger_first
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._pause: asyncio.Future[None] | None = None  # the linger in progress

    def kick(self) -> None:
        self._ready.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        while not self._stopping or self._pending():
            await self._ready.wait()
            self._ready.clear()
            again = self._linger_first
            while self._pending():
                if again and self._linger and not self._stopping and not self._full():
                    await self._wait()
                await self._drain()
                again = True

    async def _wait(self) -> None:
        """`linger` seconds, or less if stop() cuts it short."""
        loop = asyncio.get_running_loop()
        self._pause = loop.create_future()
        timer = loop.call_later(self._linger, self._cut)
        try:
            await self._pause
        finally:
            timer.cancel()
            self._pause = None

    def _cut(self) -> None:
        if self._pause is not None and not self._pause.done():
            self._pause.set_result(None)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._ready.set()
        self._cut()
        await asyncio.gather(task, return_exceptions=True)
        self._stopping = False
