"""One background task that drains a queue while it holds work, and stops only between drains.

The group commits (batcher.py) and the after-commit writer (effects.py) use it: the task starts
with the first item, `kick()` wakes it for each new one, and it calls `drain()` until nothing is
pending (optionally `linger` seconds after a wake, so that more joins the drain). `stop()` lets the
drain in progress (a transaction, a Redis call) finish and what is queued be drained, then ends the
task: never cancelled halfway, which would leave a connection half-open. Idempotent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Drainer:
    def __init__(self, name: str, drain: Callable[[], Awaitable[None]], pending: Callable[[], bool],
                 linger: float = 0.0) -> None:  # fmt: skip
        self.name = name
        self._drain = drain
        self._pending = pending
        self._linger = linger
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def kick(self) -> None:
        self._ready.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        while not self._stopping or self._pending():
            await self._ready.wait()
            if self._linger and not self._stopping:
                await asyncio.sleep(self._linger)
            self._ready.clear()
            while self._pending():
                await self._drain()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._ready.set()
        await asyncio.gather(task, return_exceptions=True)
        self._stopping = False
