"""`Group`: concurrent calls share one round trip (group commit for registrations).

A caller submits its item and awaits its own outcome. One drain task takes everything queued (up
to `max_items`), runs `flush` once (one SQL statement, one Redis pipeline) and resolves each
caller with its own result or exception (`flush` returns one per item, so one bad item fails
alone). At low load a batch is one item and nothing waits; under load the next batch grows by
itself while the previous flush is in flight. When items arrived while the last flush ran (callers
are concurrent), the next flush first waits `linger` seconds (OSSA_BATCH_LINGER_MS) for more to
join it, unless it is full: a flush's fixed cost is shared by more callers, while a lone caller,
or one making one call after another, never waits. If `flush` raises, every item of that batch
gets the exception.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
Flush = Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]


class Group(Generic[T, R]):
    def __init__(self, name: str, flush: Flush[T, R], max_items: int = 256, linger: float = 0.0) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be 1 or more, got {max_items}")
        if linger < 0:
            raise ValueError(f"linger must not be negative, got {linger}")
        self.name = name
        self.max_items = max_items
        self.linger = linger
        self.flushes = 0  # batches flushed
        self.items = 0  # items in them
        self._flush = flush
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._draining = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        """Queue `item` and wait for the outcome of the batch that carried it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, future))
        if not self._draining:
            self._draining = True
            task = loop.create_task(self._drain(), name=f"group-{self.name}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        again = False  # this flush follows another at once: items came while that one ran
        try:
            while self._queue:
                batch: list[tuple[T, asyncio.Future[R]]] = []
                try:
                    if again and self.linger and len(self._queue) < self.max_items:
                        await asyncio.sleep(self.linger)
                    batch = [self._queue.popleft() for _ in range(min(self.max_items, len(self._queue)))]
                    await self._run(batch)
                except asyncio.CancelledError:  # the loop is closing: nobody waits forever
                    for _, future in [*batch, *self._queue]:
                        future.cancel()
                    self._queue.clear()
                    raise
                again = True
        finally:
            self._draining = False  # no await since the queue was seen empty: nothing is left behind

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        outcomes: Sequence[R | BaseException]
        try:
            outcomes = await self._flush(items)
            if len(outcomes) != len(items):
                raise RuntimeError(f"group {self.name}: {len(outcomes)} outcomes for {len(items)} items")
        except Exception as err:
            outcomes = [err] * len(items)
        self.flushes += 1
        self.items += len(items)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue  # the caller went away
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
