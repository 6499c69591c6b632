"""Group commit: callers that arrive while a flush is in progress share the next one.

Each kind of transition (starts, claims, completions, failures, renewals) has one `GroupCommit`.
A caller submits its item and awaits a future; one flusher task takes everything queued (up to
`max_items`), runs `flush` once (one transaction, one or a few statements for the whole batch)
and resolves every future only after `flush` returned, that is after COMMIT. At low load a batch
is one item and nothing waits; under load the batch grows by itself while the previous flush is
in flight. When items arrived while the previous flush ran, the flusher also lingers a moment
(`linger`, a couple of milliseconds) before the next flush so that more join it (drainer.py): the
fixed cost of a transaction is shared by more callers; a lone caller, or one making one call after
another, never waits.
Per-item outcomes: `flush` returns one result or exception per item, so one bad row (a stale
fencing token) fails alone.

A deadlock or serialization failure between two batches (two orchestrator processes touching the
same rows in another order) rolls the whole transaction back; the batch is retried as is. A
database that cannot be reached (restarting, say) fails the batch with UNAVAILABLE, which callers
retry, rather than with an internal error.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import asyncpg

from orchestrator_svc.drainer import Drainer
from ossa_runtime import metrics, unreachable

log = logging.getLogger("ossa.orchestrator.batch")
T = TypeVar("T")
R = TypeVar("R")
Flush = Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]
RETRIES = 5  # deadlocks and serialization failures in a row before the batch fails
RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
# PostgreSQL is down, restarting or shutting down (or the connection broke): the caller may try again.
# Any OSError here (a batch only talks to the database), more than the interceptors' mapping.
UNREACHABLE: tuple[type[BaseException], ...] = (OSError, *unreachable.UNREACHABLE)


def unavailable(err: BaseException) -> BaseException:
    """UNAVAILABLE for a database that cannot be reached (ossa_runtime/unreachable.py); else the error."""
    return unreachable.unavailable(err, UNREACHABLE)


class GroupCommit(Generic[T, R]):
    def __init__(self, name: str, flush: Flush[T, R], max_items: int = 500, linger: float = 0.0) -> None:
        self.name = name
        self._flush = flush
        self.max_items = max_items
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._flusher = Drainer(f"group-commit-{name}", self._next, lambda: bool(self._queue),
                                linger, lambda: len(self._queue) >= self.max_items)  # fmt: skip

    def submit_nowait(self, item: T) -> asyncio.Future[R]:
        """Queue `item`; the future resolves after the batch holding it committed (or failed)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._flusher.kick()
        return future

    async def submit(self, item: T) -> R:
        return await self.submit_nowait(item)

    async def _next(self) -> None:
        batch = [self._queue.popleft() for _ in range(min(self.max_items, len(self._queue)))]
        await self._commit(batch)

    async def _commit(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        outcomes: Sequence[R | BaseException]
        for attempt in range(RETRIES + 1):
            try:
                outcomes = await self._flush(items)
                break
            except RETRYABLE as err:
                if attempt == RETRIES:
                    outcomes = [err] * len(items)
                    break
                log.info("batch rolled back; retrying", extra={"metadata": {"kind": self.name, "error": str(err)}})
            except Exception as err:  # the database is down, say: every caller gets the error
                outcomes = [unavailable(err)] * len(items)
                break
        metrics.observe_batch(self.name, len(items))
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue  # the caller gave up (cancelled)
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def stop(self) -> None:
        """Commit what is queued, then end the flusher between batches, never in one (idempotent)."""
        await self._flusher.stop()
