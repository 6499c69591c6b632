"""Recent buckets of every metric, pre-aggregated in `ossa:metrics:aggregates:{metric}:{window}`.

Each HASH maps a bucket start (microseconds since the epoch) to `count|sum|min|max` of the metric's
points in it, for every agent together, plus three bookkeeping fields:

- `_floor`: the first bucket the hash is complete for. Every bucket from `_floor` on holds every
  point PostgreSQL has, and a bucket from `_floor` on that is missing from the hash has no points.
- `_run`: the Redis server's run_id when the hash was made. After a Redis restart the AOF may
  lack the last writes, so a hash from another run is never used and is rebuilt.
- `_v`: a version, for compare-and-set (several monitoring processes may flush).

The flusher maintains the hashes after each commit, under its lock: a missing (or stale) hash is
seeded from PostgreSQL for the last `HORIZON` buckets, an existing one merged with the new points
and its older buckets dropped. A batch that was in flight when a flush failed invalidates the
hashes of its metrics (its points may be committed without having been merged). A query uses the
hash only for mergeable aggregations over every agent, and only from `_floor` on; the older part
of its range comes from PostgreSQL. A hash lags PostgreSQL by the milliseconds between a flush's
commit and its merge (merging before the commit could count points that are then rolled back).
Writes that bypass the flusher (e.g. a bulk COPY into the table) are not seen by existing hashes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
import redis.asyncio as aioredis

from monitoring_svc import buckets
from monitoring_svc.buckets import WINDOWS, Aggregate
from monitoring_svc.store import MetricsStore, StoredPoint
from ossa_runtime import keys

log = logging.getLogger("ossa.monitoring.aggregates")

# How many buckets of each window the hashes keep (3 hours of 1m, 12 of 5m, 2 days of 1h); also
# their TTL, so the hash of a metric that stops reporting goes away.
HORIZON: dict[str, int] = {"1m": 180, "5m": 144, "1h": 48}
META = ("_run", "_floor", "_v")

# KEYS: hash. ARGV: expected _v ('' = absent), '1' to replace the hash, TTL, n, n fields to delete,
# then field/value pairs. Returns 0 (and changes nothing) if _v moved on.
_APPLY = """
local seen = redis.call('HGET', KEYS[1], '_v') or ''
if seen ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then redis.call('DEL', KEYS[1]) end
local n = tonumber(ARGV[4])
for i = 5, 4 + n, 1000 do
  redis.call('HDEL', KEYS[1], unpack(ARGV, i, math.min(i + 999, 4 + n)))
end
for i = 5 + n, #ARGV, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('HSET', KEYS[1], '_v', (tonumber(seen) or 0) + 1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""
# KEYS: hash. ARGV: bucket fields. Returns false unless the hash is from this Redis run, else
# _floor followed by the fields' values.
_READ = """
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
local meta = redis.call('HMGET', KEYS[1], '_run', '_floor')
if meta[1] ~= run or not meta[2] then return false end
local out = {meta[2]}
if #ARGV > 0 then
  local values = redis.call('HMGET', KEYS[1], unpack(ARGV))
  for i = 1, #values do out[i + 1] = values[i] end
end
return out
"""


def horizon_start(now: int, window: str) -> int:
    """The oldest bucket kept at `now`."""
    return buckets.floor(now, window) - (HORIZON[window] - 1) * buckets.window_micros(window)


def ttl_seconds(window: str) -> int:
    return HORIZON[window] * WINDOWS[window]


@dataclass(frozen=True)
class Cached:
    """What a hash says about [floor, end): its buckets with points."""

    floor: int
    buckets: dict[int, Aggregate]


class AggregateCache:
    def __init__(self, redis: aioredis.Redis, store: MetricsStore) -> None:
        self.redis = redis
        self.store = store
        self._apply = redis.register_script(_APPLY)
        self._read = redis.register_script(_READ)

    async def run_id(self) -> str:
        info = await self.redis.info("server")
        return str(info["run_id"])

    async def invalidate(self, names: Iterable[str]) -> None:
        doomed = [keys.metrics_aggregates(name, window) for name in set(names) for window in WINDOWS]
        if doomed:
            await self.redis.delete(*doomed)

    async def add(self, conn: asyncpg.Connection, points: Sequence[StoredPoint], now: int) -> None:
        """Merge committed points into the hashes (seeding the missing ones from PostgreSQL)."""
        oldest = {window: horizon_start(now, window) for window in WINDOWS}
        partial = buckets.summarize(((p.name, p.timestamp, Decimal(p.value)) for p in points), oldest)
        if not partial:
            return
        targets = list(partial)
        run = await self.run_id()
        async with self.redis.pipeline(transaction=False) as pipe:
            for name, window in targets:
                pipe.hmget(keys.metrics_aggregates(name, window), [*META, *map(str, sorted(partial[name, window]))])
            states: list[list[str | None]] = await pipe.execute()
        seeds: dict[str, list[str]] = {}
        for (name, window), state in zip(targets, states, strict=True):
            if state[0] != run or state[1] is None:
                seeds.setdefault(window, []).append(name)
        seeded = {
            window: await self.store.aggregates(conn, names, window, horizon_start(now, window))
            for window, names in seeds.items()
        }
        async with self.redis.pipeline(transaction=False) as pipe:
            for (name, window), state in zip(targets, states, strict=True):
                key = keys.metrics_aggregates(name, window)
                version = state[2] or ""
                if window in seeded and name in seeded[window]:
                    fields = {"_run": run, "_floor": str(horizon_start(now, window))}
                    fields.update({str(b): a.encode() for b, a in seeded[window][name].items()})
                    await self._queue(pipe, key, version, True, window, [], fields)
                    continue
                floor = max(int(state[1] or 0), horizon_start(now, window))
                step = buckets.window_micros(window)
                dropped = [str(b) for b in range(int(state[1] or 0), floor, step)[: 4 * HORIZON[window]]]
                fields = {"_floor": str(floor)}
                current = dict(zip(sorted(partial[name, window]), state[len(META) :], strict=True))
                for bucket, added in partial[name, window].items():
                    if bucket >= floor:
                        old = current[bucket]
                        fields[str(bucket)] = (Aggregate.decode(old).merge(added) if old else added).encode()
                await self._queue(pipe, key, version, False, window, dropped, fields)
            results = await pipe.execute()
        lost = [target for target, ok in zip(targets, results, strict=True) if not ok]
        if lost:  # another flusher changed the hash meanwhile: drop it, the next flush reseeds it
            await self.redis.delete(*(keys.metrics_aggregates(n, w) for n, w in lost))
            log.warning("aggregate hashes changed concurrently; dropped", extra={"metadata": {"count": len(lost)}})

    async def _queue(
        self,
        pipe: aioredis.client.Pipeline,
        key: str,
        version: str,
        replace: bool,
        window: str,
        dropped: list[str],
        fields: dict[str, str],
    ) -> None:
        pairs = [item for pair in fields.items() for item in pair]
        args = [version, "1" if replace else "0", ttl_seconds(window), len(dropped), *dropped, *pairs]
        await self._apply(keys=[key], args=args, client=pipe)  # queued: the pipeline runs it

    async def read(self, metric: str, window: str, start: int, end: int, now: int) -> Cached | None:
        """The hash's buckets of [max(start, oldest kept), end), or None when it cannot answer."""
        lo = max(start, horizon_start(now, window))
        # No point is more than 5 minutes ahead of its ingest: later buckets are empty.
        hi = min(end, buckets.ceil(now + 5 * 60 * buckets.MICROS, window) + buckets.window_micros(window))
        fields = [str(b) for b in range(lo, hi, buckets.window_micros(window))] if lo < hi else []
        key = keys.metrics_aggregates(metric, window)
        reply = await self._read(keys=[key], args=fields)
        if not reply:
            return None
        floor = max(int(reply[0]), lo)
        found = {
            int(field): Aggregate.decode(value)
            for field, value in zip(fields, reply[1:], strict=False)
            if value and int(field) >= floor
        }
        return Cached(floor, found)
