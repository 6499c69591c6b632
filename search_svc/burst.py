"""`Burst`: whether writes are streaming in, so that indexing waits for them to pass.

Indexing an agent costs about 1 ms of model CPU against about 2 ms for the whole registration,
and niceness does not keep the two apart on this kind of machine (a nice-19 indexer thread on the
sibling of a core still slowed a registration burst by about a fifth; stopping the search service
during the burst measured 411 -> 507 registrations/s, benchmarks/bench_gateway.py --writes-only).
So the indexer holds while the outbox's NOTIFYs arrive faster than `rate` per second (a burst: a
person or a deploy script registers far slower), and drains the backlog once they slow down. A
burst is held for at most `longest` seconds: under writes that never stop, indexing goes on
beside them as before, so the backlog stays bounded. Searches are not held.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

RATE = 20.0  # NOTIFYs per second (one per committed batch of registrations) that make a burst
WINDOW_SECONDS = 1.0
LONGEST_SECONDS = 30.0


class Burst:
    def __init__(
        self,
        rate: float = RATE,
        window: float = WINDOW_SECONDS,
        longest: float = LONGEST_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.window = window
        self.longest = longest
        self.clock = clock
        self.held_seconds = 0.0  # in all, for the logs and tests
        self._seen: deque[float] = deque()
        self._since: float | None = None  # when the burst being held began

    def note(self) -> None:
        """One write announced (a NOTIFY)."""
        now = self.clock()
        if self._seen and self._seen[-1] <= now - self.window:
            self._since = None  # a pause of a whole window ended the last burst
        self._seen.append(now)

    def holding(self) -> bool:
        """True while the writes of the last `window` seconds make a burst held for less than `longest`."""
        now = self.clock()
        while self._seen and self._seen[0] <= now - self.window:
            self._seen.popleft()
        if len(self._seen) < self.rate * self.window:
            self._since = None
            return False
        if self._since is None:
            self._since = now
        return now - self._since < self.longest
