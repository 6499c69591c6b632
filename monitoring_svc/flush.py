"""The background flusher: `ossa:metrics:buffer` (Redis) → the `metrics` table (PostgreSQL).

A flush runs every `metrics_flush_seconds`, or at once when ingest finds a full batch
(`metrics_flush_batch`) waiting, whichever comes first. Under a PostgreSQL advisory lock (one
flusher at a time across monitoring processes) it first writes a batch left in flight by a failed
or interrupted flush, then moves the next batch atomically to `ossa:metrics:buffer:processing`,
writes it with one INSERT ... SELECT FROM unnest(...) (points of agents deleted since ingest are
dropped there and logged), merges it into the aggregate hashes, and only then empties the
processing list.

Durability:
- Acknowledged points are already in Redis, so a crash (or kill -9) of the monitoring service
  loses none: the batch in flight stays in the processing list and is written again by the next
  flush of any monitoring process, without duplicates (each point carries its row id; the INSERT
  skips ids already stored).
- A graceful stop (SIGTERM) stops the loop and drains the buffer into PostgreSQL before exiting.
  If PostgreSQL is unreachable then, the points stay in Redis for the next start.
- What Redis itself loses is lost: `ossa up` runs it with `appendonly yes` and `appendfsync
  everysec`, so a crash of the machine (or of Redis when its disk stalls) can lose about the last
  second of acknowledged points; a crash of the Redis process alone normally loses nothing. After
  such a loss a re-written batch is still not duplicated, for the reason above.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from monitoring_svc.aggregates import AggregateCache
from monitoring_svc.buffer import MetricsBuffer, decode
from monitoring_svc.store import MetricsStore

log = logging.getLogger("ossa.monitoring.flush")
DRAIN_LOCK_WAIT = 10.0  # seconds a final flush waits for another process's flush


def now_micros() -> int:
    return time.time_ns() // 1000


class Flusher:
    def __init__(
        self, buffer: MetricsBuffer, store: MetricsStore, cache: AggregateCache, every: float, batch: int
    ) -> None:
        self.buffer = buffer
        self.store = store
        self.cache = cache
        self.every = every
        self.batch = batch
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """A full batch waits: flush now rather than at the next tick."""
        self._wake.set()

    async def flush_once(self, wait: float = 0.0) -> int | None:
        """One locked flush; returns how many points it took from the buffer (None if another
        process held the lock for `wait` seconds: that one is flushing)."""
        if await self.buffer.idle():  # the common case between bursts: no PostgreSQL round trip
            return 0
        async with self.store.flush_lock(wait) as conn:
            if conn is None:
                return None
            left = await self.buffer.in_flight()
            if left:
                log.warning("re-writing a batch left in flight", extra={"metadata": {"points": len(left)}})
                points = decode(left)
                await self.store.insert(conn, points)
                # Some may have been committed without reaching the aggregate hashes: rebuild those.
                await self.cache.invalidate(p.name for p in points)
                await self.buffer.done()
            taken = await self.buffer.take(self.batch)
            if taken:
                points = decode(taken)
                stored = await self.store.insert(conn, points)
                await self.cache.add(conn, [p for p in points if p.id in stored], now_micros())
                await self.buffer.done()
                if len(stored) < len(points):
                    log.warning(
                        "points not written: their agent was deleted since ingest (or they were already stored)",
                        extra={"metadata": {"dropped": len(points) - len(stored), "written": len(stored)}},
                    )
            return len(taken)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.every):
                    await self._wake.wait()
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                while (await self.flush_once() or 0) >= self.batch and not self._stopping.is_set():
                    pass  # a full batch: there may be more waiting
            except Exception as err:  # retried on the next tick; the batch stays in Redis
                log.warning("metrics flush failed; will retry", extra={"metadata": {"error": str(err)}})

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name="metrics-flusher")

    async def drain(self) -> None:
        """Flush until a flush finds less than a full batch (the buffer was empty then)."""
        while True:
            taken = await self.flush_once(wait=DRAIN_LOCK_WAIT)
            if taken is None:
                log.info("another monitoring process is flushing the buffer")
                return
            if taken < self.batch:
                return

    async def stop(self) -> None:
        """Stop the loop (a flush in progress finishes) and write everything buffered (idempotent)."""
        if self._task is not None:
            self._stopping.set()
            self._wake.set()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        started = time.monotonic()
        try:
            await self.drain()
        except Exception:
            log.exception("final metrics flush failed; the points stay in Redis for the next start")
            return
        log.info("metrics buffer drained", extra={"metadata": {"seconds": round(time.monotonic() - started, 3)}})
