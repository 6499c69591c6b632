"""The Redis side of ingest: `ossa:metrics:buffer` (a LIST of JSON points) and the batch in flight.

A point is in Redis before IngestMetrics/PushMetrics answers. The flusher moves a batch atomically
from the head of the buffer to `ossa:metrics:buffer:processing` and deletes it from there only once
PostgreSQL has committed it, so a batch survives a crash of the service mid-flush and is written
again by the next flush; every point carries its row id, which makes writing it twice a no-op.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from monitoring_svc.store import StoredPoint
from monitoring_svc.validation import Point
from ossa_runtime import keys

log = logging.getLogger("ossa.monitoring.buffer")

# KEYS: buffer. ARGV: the cap, then the entries. Returns the new length, or -1 when full.
_PUSH = """
local cap = tonumber(ARGV[1])
if redis.call('LLEN', KEYS[1]) + #ARGV - 1 > cap then return -1 end
for i = 2, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return redis.call('LLEN', KEYS[1])
"""
# KEYS: buffer, processing. ARGV: batch size. Moves up to that many entries from the head of the
# buffer to the processing list (which the caller has emptied) and returns them joined by
# newlines (one reply to parse instead of thousands; JSON text has no raw newline).
_TAKE = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
for i = 1, #items, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 999, #items)))
end
if #items > 0 then redis.call('LTRIM', KEYS[1], #items, -1) end
return table.concat(items, '\\n')
"""


class BufferFull(Exception):
    """The buffer holds `metrics_buffer_max` points: PostgreSQL is behind or down."""


def encode(point: Point) -> str:
    entry = {
        "i": str(uuid.uuid4()),
        "a": point.agent_id,
        "n": point.name,
        "v": str(point.value),
        "l": json.dumps(point.labels, separators=(",", ":"), ensure_ascii=False),
        "t": point.timestamp,
    }
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)


def _point(entry: dict[str, Any]) -> StoredPoint:
    return StoredPoint(entry["i"], entry["a"], entry["n"], entry["v"], entry["l"], int(entry["t"]))


def decode(raw: list[str]) -> list[StoredPoint]:
    """Buffer entries → points; an entry that cannot be read is logged and skipped."""
    try:
        return [_point(entry) for entry in json.loads("[" + ",".join(raw) + "]")]
    except (ValueError, KeyError, TypeError):
        pass  # one bad entry: decode them one by one
    points = []
    for item in raw:
        try:
            points.append(_point(json.loads(item)))
        except (ValueError, KeyError, TypeError):
            log.error("undecodable entry in the metrics buffer; skipped", extra={"metadata": {"entry": item[:200]}})
    return points


class MetricsBuffer:
    def __init__(self, redis: aioredis.Redis, cap: int) -> None:
        self.redis = redis
        self.cap = cap
        self._push = redis.register_script(_PUSH)
        self._take = redis.register_script(_TAKE)

    async def push(self, points: Sequence[Point]) -> int:
        """Append the points (all or none); returns the buffer's new length."""
        if not points:
            return int(await self.redis.llen(keys.METRICS_BUFFER))
        length = int(await self._push(keys=[keys.METRICS_BUFFER], args=[self.cap, *map(encode, points)]))
        if length < 0:
            raise BufferFull(f"the metrics buffer holds {self.cap} points waiting for PostgreSQL")
        return length

    async def length(self) -> int:
        return int(await self.redis.llen(keys.METRICS_BUFFER))

    async def idle(self) -> bool:
        """Nothing waits and nothing is in flight."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.llen(keys.METRICS_BUFFER)
            pipe.llen(keys.METRICS_BUFFER_PROCESSING)
            lengths = await pipe.execute()
        return not any(lengths)

    async def in_flight(self) -> list[str]:
        """A batch a flush took but did not finish (the service stopped or failed mid-flush)."""
        items = await self.redis.lrange(keys.METRICS_BUFFER_PROCESSING, 0, -1)
        return [str(item) for item in items]

    async def take(self, count: int) -> list[str]:
        joined = await self._take(keys=[keys.METRICS_BUFFER, keys.METRICS_BUFFER_PROCESSING], args=[count])
        return str(joined).split("\n") if joined else []

    async def done(self) -> None:
        """The batch in flight is in PostgreSQL."""
        await self.redis.delete(keys.METRICS_BUFFER_PROCESSING)
