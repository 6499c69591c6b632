"""Exponential backoff with jitter for reconnecting to the platform."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays `initial`, doubling up to `maximum`; each delay is shortened by up to `jitter` (a fraction) at random.

    >>> b = Backoff(rand=lambda: 0.0)
    >>> [b.next() for _ in range(7)]
    [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]

    `reset()` after a success starts again from `initial`.
    """

    def __init__(
        self,
        initial: float = 0.2,
        maximum: float = 5.0,
        factor: float = 2.0,
        jitter: float = 0.2,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")
        if factor < 1 or not 0 <= jitter < 1:
            raise ValueError("backoff needs factor >= 1 and 0 <= jitter < 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._rand = rand
        self._current = initial

    def next(self) -> float:
        """The next delay in seconds (between (1 - jitter) and 1 times the nominal delay)."""
        nominal = self._current
        self._current = min(self._current * self.factor, self.maximum)
        return nominal * (1.0 - self.jitter * self._rand())

    def reset(self) -> None:
        self._current = self.initial
