"""The monitoring service's SQL: the `metrics` table, written in batches, read as time buckets.

Writes go through the flusher only, one at a time across every monitoring process (a PostgreSQL
advisory lock), each batch one INSERT ... SELECT FROM unnest(...). Reads use the covering indexes of
migration 0003 (index-only range scans) and date_bin() for the buckets.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from monitoring_svc import buckets
from monitoring_svc.buckets import WINDOWS, Aggregate, Bucket

# Any fixed 64-bit number no other application on the database uses (migrations use ...0001).
FLUSH_LOCK_ID = 0x05_5A_00_02
PRUNE_BATCH, PRUNE_MAX_BATCHES = 10_000, 50

_INSERT = """
INSERT INTO metrics (id, agent_id, metric_name, metric_value, labels, timestamp)
SELECT p.id, p.agent_id, p.name, p.value::numeric, p.labels::jsonb, p.ts
  FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
       AS p(id, agent_id, name, value, labels, ts)
 WHERE p.agent_id IS NULL OR EXISTS (SELECT 1 FROM agents a WHERE a.id = p.agent_id)
ON CONFLICT (id) DO NOTHING
RETURNING id::text
"""
_BUCKET = "date_bin($1::interval, timestamp, '1970-01-01T00:00:00Z'::timestamptz)"
# What each aggregation selects besides the bucket and its count (mergeable ones: enough to build
# an Aggregate; p95 the value itself).
_SELECT = {
    "avg": "sum(metric_value) AS total, NULL::numeric AS low, NULL::numeric AS high",
    "sum": "sum(metric_value) AS total, NULL::numeric AS low, NULL::numeric AS high",
    "count": "NULL::numeric AS total, NULL::numeric AS low, NULL::numeric AS high",
    "min": "NULL::numeric AS total, min(metric_value) AS low, NULL::numeric AS high",
    "max": "NULL::numeric AS total, NULL::numeric AS low, max(metric_value) AS high",
    "p95": "percentile_cont(0.95) WITHIN GROUP (ORDER BY metric_value::float8) AS p95",
}


@dataclass(frozen=True)
class StoredPoint:
    """A point as buffered in Redis and written to PostgreSQL (its id makes re-writes no-ops)."""

    id: str
    agent_id: str | None
    name: str
    value: str  # the decimal, as text
    labels: str  # a JSON object, as text
    timestamp: int  # microseconds since the epoch


def _interval(window: str) -> timedelta:
    return timedelta(seconds=WINDOWS[window])


class MetricsStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @contextlib.asynccontextmanager
    async def flush_lock(self, wait: float = 0.0) -> AsyncIterator[asyncpg.Connection | None]:
        """A connection holding the flush lock, or None if another flusher holds it for `wait` s."""
        async with self.pool.acquire() as conn:
            deadline = time.monotonic() + wait
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", FLUSH_LOCK_ID):
                if time.monotonic() >= deadline:
                    yield None
                    return
                await asyncio.sleep(0.05)
            try:
                yield conn
            finally:
                # On a broken connection the lock went with the session (and the pool's reset on
                # release unlocks anything left).
                with contextlib.suppress(Exception):
                    await conn.execute("SELECT pg_advisory_unlock($1)", FLUSH_LOCK_ID)

    async def insert(self, conn: asyncpg.Connection, points: Sequence[StoredPoint]) -> set[str]:
        """Insert in one statement; returns the ids written (not: unknown agents, rows already stored)."""
        args = (
            [p.id for p in points],
            [p.agent_id for p in points],
            [p.name for p in points],
            [p.value for p in points],
            [p.labels for p in points],
            [buckets.to_datetime(p.timestamp) for p in points],
        )
        try:
            rows = await conn.fetch(_INSERT, *args)
        except asyncpg.ForeignKeyViolationError:
            # An agent was deleted between the EXISTS check's snapshot and the insert: once more,
            # with a new snapshot that no longer sees it.
            rows = await conn.fetch(_INSERT, *args)
        return {r["id"] for r in rows}

    async def buckets(
        self, metric: str, agent_id: str | None, start: int, end: int, window: str, agg: str
    ) -> list[Bucket]:
        """The buckets of [start, end) that hold points (one index range scan)."""
        where = "metric_name = $2 AND timestamp >= $3 AND timestamp < $4"
        args: list[Any] = [_interval(window), metric, buckets.to_datetime(start), buckets.to_datetime(end)]
        if agent_id is not None:
            where += " AND agent_id = $5"
            args.append(agent_id)
        rows = await self.pool.fetch(
            f"""SELECT {_BUCKET} AS bucket, count(*) AS n, {_SELECT[agg]}
                  FROM metrics WHERE {where} GROUP BY bucket ORDER BY bucket""",
            *args,
        )
        out = []
        for r in rows:
            if agg == "p95":
                value = float(r["p95"])
            else:
                zero = Decimal(0)
                value = Aggregate(r["n"], r["total"] or zero, r["low"] or zero, r["high"] or zero).value(agg)
            out.append(Bucket(buckets.to_micros(r["bucket"]), value, r["n"]))
        return out

    async def aggregates(
        self, conn: asyncpg.Connection, names: Sequence[str], window: str, start: int
    ) -> dict[str, dict[int, Aggregate]]:
        """Every bucket from `start` on of the named metrics (to seed the cache)."""
        rows = await conn.fetch(
            f"""SELECT metric_name, {_BUCKET} AS bucket, count(*) AS n, sum(metric_value) AS total,
                       min(metric_value) AS low, max(metric_value) AS high
                  FROM metrics WHERE metric_name = ANY($2::text[]) AND timestamp >= $3
                 GROUP BY metric_name, bucket""",
            _interval(window),
            list(names),
            buckets.to_datetime(start),
        )
        out: dict[str, dict[int, Aggregate]] = {name: {} for name in names}
        for r in rows:
            aggregate = Aggregate(r["n"], r["total"], r["low"], r["high"])
            out[r["metric_name"]][buckets.to_micros(r["bucket"])] = aggregate
        return out

    async def unknown_agents(self, agent_ids: Sequence[str]) -> set[str]:
        rows = await self.pool.fetch("SELECT id::text AS id FROM agents WHERE id = ANY($1::uuid[])", list(agent_ids))
        return set(agent_ids) - {r["id"] for r in rows}

    async def prune(self, older_than: int) -> int:
        """Delete points older than `older_than` (microseconds), in bounded batches; returns how many."""
        cutoff = buckets.to_datetime(older_than)
        deleted = 0
        for _ in range(PRUNE_MAX_BATCHES):
            result: str = await self.pool.execute(
                """DELETE FROM metrics WHERE ctid = ANY(ARRAY(
                       SELECT ctid FROM metrics WHERE timestamp < $1 LIMIT $2))""",
                cutoff,
                PRUNE_BATCH,
            )
            count = int(result.split()[-1])
            deleted += count
            if count < PRUNE_BATCH:
                break
        return deleted
