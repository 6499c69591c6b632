"""Adaptive coalescing of stream writes: at once when idle, a moment's wait when busy.

A stream writer that just wrote waits `seconds` before its next write, if that next write comes
within `busy_window` of the last one: under load several messages (assignments, receipts, reports)
then share one write, which is what a write costs (a system call, an HTTP/2 frame, a Python
round of gRPC); when idle, nothing waits and latency stays that of a single message.
"""

from __future__ import annotations

import asyncio


class Linger:
    def __init__(self, seconds: float = 0.001, busy_window: float = 0.005) -> None:
        self.seconds = seconds
        self.busy_window = busy_window
        self._last = float("-inf")

    async def wait(self) -> None:
        """Call right before a write."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._last < self.busy_window:
            await asyncio.sleep(self.seconds)
        self._last = loop.time()
