"""Answer a metrics query from the aggregate hashes where they are exact, else from PostgreSQL.

A hash answers whole buckets from its `_floor` on, for avg/min/max/sum/count over every agent. A
range that starts earlier is split: PostgreSQL for [from, boundary), the hash for [boundary, to).
Per-agent queries and p95 always go to PostgreSQL.
"""

from __future__ import annotations

from monitoring_svc import buckets
from monitoring_svc.aggregates import HORIZON, AggregateCache
from monitoring_svc.buckets import MERGEABLE, MICROS, Bucket
from monitoring_svc.store import MetricsStore
from monitoring_svc.validation import Query


class MetricsQuery:
    def __init__(self, store: MetricsStore, cache: AggregateCache, retention_hours: int) -> None:
        self.store = store
        self.cache = cache
        self.retention = retention_hours * 3600 * MICROS
        self.from_cache = 0  # queries answered (at least partly) from a hash, for tests and logs

    async def run(self, q: Query, now: int) -> list[Bucket]:
        if q.agent_id is None and q.agg in MERGEABLE and q.window in HORIZON:
            cached = await self.cache.read(q.metric, q.window, q.start, q.end, now)
            if cached is not None:
                # Buckets that retention may have started to prune are PostgreSQL's to answer.
                boundary = max(cached.floor, buckets.ceil(now - self.retention, q.window), q.start)
                if boundary < q.end:
                    self.from_cache += 1
                    head = await self._sql(q, q.start, boundary) if boundary > q.start else []
                    tail = [
                        Bucket(start, aggregate.value(q.agg), aggregate.count)
                        for start, aggregate in sorted(cached.buckets.items())
                        if boundary <= start < q.end
                    ]
                    return head + tail
        return await self._sql(q, q.start, q.end)

    async def _sql(self, q: Query, start: int, end: int) -> list[Bucket]:
        return await self.store.buckets(q.metric, q.agent_id, start, end, q.window, q.agg)
