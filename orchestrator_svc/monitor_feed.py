"""Feed the monitoring service the series the operations console charts (console/views/queue.js).

Agents push their own metrics; the platform's task flow is known only here, so the orchestrator
writes it to the monitoring service (IngestMetrics, as a `service` caller with agent:write) every
OSSA_MONITOR_FEED_SECONDS (10):

- `ossa.tasks.finished`: tasks of this process that reached a final status (completed or failed)
  during the interval, one point per interval that had any. Every orchestrator process sends its
  own count, so the per-minute sum is the platform's throughput.
- `ossa.tasks.duration_seconds`: one point per ended task attempt (claim -> end, as the
  ossa_task_duration_seconds histogram), timestamped when it ended; the console asks for the p95.
  At most MAX_DURATIONS per interval (a uniform sample beyond that).
- `ossa.queue.depth.priority.<1-10>`: pending tasks of each priority in PostgreSQL (zeros
  included, so a drained queue reads 0). One process writes them per interval: the one that
  claims `ossa:monitor_feed:queue:<interval>` in Redis first (SET NX).

Best effort: a failed write drops that interval's points (logged once per failure); the charts
show a gap, nothing else depends on them.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from google.protobuf.timestamp_pb2 import Timestamp

from orchestrator_svc.outcome import Outcome
from ossa.monitoring.v1 import monitoring_pb2 as pb

log = logging.getLogger("ossa.orchestrator.feed")

FINISHED = "ossa.tasks.finished"
DURATION = "ossa.tasks.duration_seconds"
DEPTH_PREFIX = "ossa.queue.depth.priority."
PRIORITIES = range(1, 11)
MAX_DURATIONS = 2000
CLAIM_KEY = "ossa:monitor_feed:queue:{}"

Ingest = Callable[[Sequence[pb.MetricPoint]], Awaitable[Any]]


def point(name: str, value: float, at: float) -> pb.MetricPoint:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.fromtimestamp(at, UTC))
    return pb.MetricPoint(name=name, value=value, timestamp=stamp)


class MonitorFeed:
    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis, ingest: Ingest, every: float) -> None:
        self.pool = pool
        self.redis = redis
        self.ingest = ingest
        self.every = every
        self.finished = 0
        self.durations: list[tuple[float, float]] = []  # (ended at, seconds)
        self.seen_durations = 0

    def observe(self, outcome: Outcome) -> None:
        """Count what a committed change ended (an Effects observer)."""
        now = time.time()
        for end in outcome.ended:
            if end.final is not None:
                self.finished += 1
            if end.attempt is not None and end.seconds is not None:
                self.seen_durations += 1
                sample = (now, max(0.0, end.seconds))
                if len(self.durations) < MAX_DURATIONS:
                    self.durations.append(sample)
                else:  # reservoir sampling: every duration equally likely to be kept
                    slot = random.randrange(self.seen_durations)
                    if slot < MAX_DURATIONS:
                        self.durations[slot] = sample

    def take(self, now: float) -> list[pb.MetricPoint]:
        """This process's task points since the last call (and forget them)."""
        points = [point(DURATION, seconds, at) for at, seconds in self.durations]
        if self.finished:
            points.append(point(FINISHED, float(self.finished), now))
        self.finished, self.durations, self.seen_durations = 0, [], 0
        return points

    async def queue_points(self, now: float) -> list[pb.MetricPoint]:
        """Queue depth by priority, when this process is the first to claim the interval."""
        interval = int(now // self.every)
        claimed = await self.redis.set(CLAIM_KEY.format(interval), "1", nx=True, ex=max(60, int(self.every * 6)))
        if not claimed:
            return []
        rows = await self.pool.fetch(
            "SELECT priority, count(*) AS n FROM tasks WHERE status = 'pending' GROUP BY priority"
        )
        depth = {int(r["priority"]): int(r["n"]) for r in rows if r["priority"] is not None}
        return [point(f"{DEPTH_PREFIX}{p}", float(depth.get(p, 0)), now) for p in PRIORITIES]

    async def run(self) -> int:
        """One interval: send what was counted and, if claimed, the queue depth. Points sent."""
        now = time.time()
        points = self.take(now)
        try:
            points += await self.queue_points(now)
        except Exception as err:  # Redis or PostgreSQL down: the task points still go out
            log.warning("queue depth not sampled", extra={"metadata": {"error": str(err)}})
        if points:
            await self.ingest(points)
        return len(points)
