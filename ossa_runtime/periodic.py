"""A background job that runs a coroutine every N seconds until stopped (idempotent start/stop).

Stopping never interrupts a run in progress (a cancelled database or Redis call can leave a
half-open connection behind); it ends the wait between runs and lets the current run finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("ossa.periodic")


class Periodic:
    def __init__(self, name: str, every: float, job: Callable[[], Awaitable[Any]]) -> None:
        self.name = name
        self.every = every
        self.job = job
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wakeup = asyncio.Event()  # set by stop() and kick()

    def kick(self) -> None:
        """Run soon instead of at the next tick (new work arrived)."""
        self._wakeup.set()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.every):
                    await self._wakeup.wait()
            if self._stopping.is_set():
                return
            self._wakeup.clear()
            try:
                await self.job()
            except Exception as err:  # a failed run is retried on the next tick
                log.warning("%s failed; will retry", self.name, extra={"metadata": {"error": str(err)}})

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._wakeup.clear()
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._stopping.set()
            self._wakeup.set()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
