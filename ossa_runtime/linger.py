"""Adaptive coalescing: at once when idle, a moment's wait when busy.

Whatever has a fixed cost per round (a stream write: a system call, an HTTP/2 frame, a Python
round of gRPC) calls `wait()` right before each round. If the previous round began within
`busy_window`, work is still arriving: it waits `seconds` so that more joins this round. When
idle, nothing waits and latency stays that of a single item. With `busy_window=math.inf` every
round waits: for a caller that decides itself when to wait (orchestrator_svc/drainer.py). `cut()`
ends a wait in progress at once (shutting down: what is queued goes now).
"""

from __future__ import annotations

import asyncio
import math


class Linger:
    def __init__(self, seconds: float = 0.001, busy_window: float = 0.005) -> None:
        self.seconds = seconds
        self.busy_window = busy_window
        self._last = float("-inf")
        self.waits = 0  # rounds that waited
        self._sleeping: asyncio.Future[None] | None = None

    async def wait(self) -> None:
        """Call right before a round."""
        loop = asyncio.get_running_loop()
        if self.seconds > 0 and (self.busy_window == math.inf or loop.time() - self._last < self.busy_window):
            self.waits += 1
            self._sleeping = loop.create_future()
            timer = loop.call_later(self.seconds, self.cut)
            try:
                await self._sleeping
            finally:
                timer.cancel()
                self._sleeping = None
        self._last = loop.time()

    def cut(self) -> None:
        """End the wait in progress, if any."""
        if self._sleeping is not None and not self._sleeping.done():
            self._sleeping.set_result(None)
