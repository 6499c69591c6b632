"""The monitoring service over real gRPC with real PostgreSQL and Redis: ingest, flush, query,
the aggregate cache, crash recovery, graceful stop and retention."""

from __future__ import annotations

import asyncio
import math
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from monitoring_svc import buckets
from monitoring_svc.buckets import MICROS
from monitoring_svc.buffer import decode
from monitoring_svc.flush import now_micros
from monitoring_svc.server import Parts, build_service
from monitoring_svc.store import StoredPoint
from monitoring_svc.validation import parse_points
from ossa.monitoring.v1 import monitoring_pb2 as pb
from ossa.monitoring.v1 import monitoring_pb2_grpc
from ossa_runtime import keys
from ossa_runtime.server import ServiceHost
from ossa_runtime.settings import Settings
from tests import auth

pytestmark = pytest.mark.integration
MINUTE = 60 * MICROS


@dataclass
class Monitoring:
    host: ServiceHost
    parts: Parts
    stub: monitoring_pb2_grpc.MonitoringServiceStub
    channel: grpc.aio.Channel
    settings: Settings


async def start(settings: Settings) -> Monitoring:
    host, port, parts = await build_service(settings, port=0)
    await host.start()
    channel = auth.channel(f"127.0.0.1:{port}")
    return Monitoring(host, parts, monitoring_pb2_grpc.MonitoringServiceStub(channel), channel, settings)


async def stop(m: Monitoring) -> None:
    await m.channel.close()
    await m.host.stop()


@pytest.fixture(scope="module")
async def mon(settings: Settings) -> AsyncIterator[Monitoring]:
    m = await start(settings.replace(metrics_flush_seconds=0.05, metrics_flush_batch=500))
    yield m
    await stop(m)


@pytest.fixture(scope="module")
async def db(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(settings.database_url)
    yield conn
    await conn.close()


async def new_agent(db: asyncpg.Connection) -> str:
    return str(
        await db.fetchval(
            "INSERT INTO agents (name, type, version) VALUES ($1, 'worker', '1.0.0') RETURNING id",
            f"agent-{secrets.token_hex(4)}",
        )
    )


def metric() -> str:
    return f"test.{secrets.token_hex(5)}"


def point(name: str, value: float, at: int, agent: str = "", **labels: str) -> pb.MetricPoint:
    p = pb.MetricPoint(name=name, value=value, agent_id=agent, labels=labels)
    p.timestamp.FromMicroseconds(at)
    return p


async def stored(mon: Monitoring, db: asyncpg.Connection, name: str, count: int, timeout: float = 10.0) -> None:
    """Until `count` points of `name` are in the table and the flush that wrote them is over (its
    batch leaves the processing list only after the aggregate hashes were merged)."""
    deadline = time.monotonic() + timeout
    while True:
        n = await db.fetchval("SELECT count(*) FROM metrics WHERE metric_name = $1", name)
        if n >= count and await mon.parts.flusher.buffer.idle():
            break
        assert time.monotonic() < deadline, f"only {n} of {count} points of {name} were flushed"
        await asyncio.sleep(0.05)
    assert n == count


def p95(values: Sequence[float]) -> float:
    """PostgreSQL's percentile_cont(0.95): linear interpolation between the closest ranks."""
    ordered = sorted(values)
    rank = 0.95 * (len(ordered) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def expected(points: Sequence[pb.MetricPoint], window: str, agg: str) -> list[tuple[int, float, int]]:
    groups: dict[int, list[float]] = {}
    for p in points:
        groups.setdefault(buckets.floor(p.timestamp.ToMicroseconds(), window), []).append(p.value)
    finish: dict[str, Callable[[list[float]], float]] = {
        "avg": lambda v: float(sum(map(Decimal, map(repr, v))) / len(v)),
        "sum": lambda v: float(sum(map(Decimal, map(repr, v)))),
        "min": min,
        "max": max,
        "count": lambda v: float(len(v)),
        "p95": p95,
    }
    return [(start, finish[agg](v), len(v)) for start, v in sorted(groups.items())]


def got(reply: pb.QueryMetricsResponse) -> list[tuple[int, float, int]]:
    return [(b.start.ToMicroseconds(), b.value, b.count) for b in reply.buckets]


def same(found: list[tuple[int, float, int]], want: list[tuple[int, float, int]]) -> bool:
    """Same buckets and counts, values equal to the last bits."""
    return [(s, c) for s, _, c in found] == [(s, c) for s, _, c in want] and [v for _, v, _ in found] == pytest.approx(
        [v for _, v, _ in want], rel=1e-12
    )


def query(name: str, start: int, end: int, window: str, agg: str, agent: str = "") -> pb.QueryMetricsRequest:
    request = pb.QueryMetricsRequest(metric_name=name, window=window, agg=agg, agent_id=agent)
    getattr(request, "from").FromMicroseconds(start)
    request.to.FromMicroseconds(end)
    return request


async def invalid(call: Any) -> dict[str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    return {"details": err.value.details() or ""}


# Ingest → flush → query -------------------------------------------------------------------------


async def test_batch_and_stream_land_in_the_table_and_every_aggregation_is_right(
    mon: Monitoring, db: asyncpg.Connection
) -> None:
    a, b = await new_agent(db), await new_agent(db)
    name = metric()
    base = buckets.floor(now_micros(), "5m") - 20 * MINUTE
    points = [
        point(name, round(math.sin(i) * 100, 3) + i / 7, base + i * 7 * MICROS, a if i % 3 else b, host=f"h{i % 2}")
        for i in range(200)
    ]
    call = mon.stub.IngestMetrics(pb.IngestMetricsRequest(metrics=points[:80]))
    reply = await call
    assert (reply.accepted, reply.rejected) == (80, 0)
    assert "x-http-code" not in dict(await call.initial_metadata())  # the REST status comes from the route

    async def stream() -> AsyncIterator[pb.PushMetricsRequest]:
        for chunk in (points[80:130], [], points[130:]):
            yield pb.PushMetricsRequest(metrics=chunk)

    pushed = await mon.stub.PushMetrics(stream())
    assert (pushed.accepted, pushed.rejected) == (120, 0)
    await stored(mon, db, name, 200)
    row = await db.fetchrow(
        "SELECT agent_id::text AS agent, metric_value, jsonb_typeof(labels) AS kind, labels->>'host' AS host "
        "FROM metrics WHERE metric_name = $1 ORDER BY timestamp LIMIT 1",
        name,
    )
    assert tuple(row.values()) == (b, Decimal(repr(points[0].value)), "object", "h0")

    start, end = base - 5 * MINUTE, base + 40 * MINUTE
    for window in ("1m", "5m", "1h"):
        for agg in ("avg", "min", "max", "sum", "count", "p95"):
            reply = await mon.stub.QueryMetrics(query(name, start, end, window, agg))
            assert same(got(reply), expected(points, window, agg)), (window, agg)
    mine = [p for p in points if p.agent_id == a]
    for agg in ("avg", "p95", "count"):
        reply = await mon.stub.QueryMetrics(query(name, start, end, "5m", agg, agent=a))
        assert same(got(reply), expected(mine, "5m", agg)), agg


async def test_cached_buckets_equal_sql_exactly(mon: Monitoring, db: asyncpg.Connection) -> None:
    name = metric()
    now = now_micros()
    values = [0.1, 0.2, 0.3, 1e-9, 12345.678, -0.5, 1e15, 3.3]
    first = [point(name, v, now - 30 * MINUTE + i * 11 * MICROS) for i, v in enumerate(values)]
    await mon.stub.IngestMetrics(pb.IngestMetricsRequest(metrics=first))
    await stored(mon, db, name, len(values))
    later = [point(name, v * 3, now - 30 * MINUTE + i * 5 * MICROS) for i, v in enumerate(values)]
    await mon.stub.IngestMetrics(pb.IngestMetricsRequest(metrics=later))  # merged into cached buckets
    await stored(mon, db, name, 2 * len(values))
    start, end = now - 2 * 3600 * MICROS, now
    for window in ("1m", "5m", "1h"):
        for agg in ("avg", "min", "max", "sum", "count"):
            before = mon.parts.query.from_cache
            reply = await mon.stub.QueryMetrics(query(name, start, end, window, agg))
            assert mon.parts.query.from_cache == before + 1, (window, agg)
            q = (name, None, buckets.floor(start, window), buckets.ceil(end, window), window, agg)
            sql = await mon.parts.store.buckets(*q)
            assert got(reply) == [(s.start, s.value, s.count) for s in sql], (window, agg)  # exact, not approx
            assert sum(c for _, _, c in got(reply)) == 16


async def test_hash_from_another_redis_run_is_not_used(mon: Monitoring, db: asyncpg.Connection) -> None:
    name = metric()
    now = now_micros()
    await mon.stub.IngestMetrics(pb.IngestMetricsRequest(metrics=[point(name, 1.0, now - MINUTE)]))
    await stored(mon, db, name, 1)
    redis = aioredis.Redis.from_url(mon.settings.redis_url, decode_responses=True)
    try:
        await redis.hset(keys.metrics_aggregates(name, "1m"), "_run", "0" * 40)  # as after a Redis restart
        before = mon.parts.query.from_cache
        reply = await mon.stub.QueryMetrics(query(name, now - 10 * MINUTE, now, "1m", "sum"))
        assert mon.parts.query.from_cache == before and [b.value for b in reply.buckets] == [1.0]
        await mon.stub.IngestMetrics(pb.IngestMetricsRequest(metrics=[point(name, 2.0, now - MINUTE)]))
        await stored(mon, db, name, 2)  # the next flush reseeds the hash from PostgreSQL
        reply = await mon.stub.QueryMetrics(query(name, now - 10 * MINUTE, now, "1m", "sum"))
        assert mon.parts.query.from_cache == before + 1 and [b.value for b in reply.buckets] == [3.0]
    finally:
        await redis.aclose()


async def test_old_part_of_a_range_comes_from_postgres(mon: Monitoring, db: asyncpg.Connection) -> None:
    name = metric()
    now = now_micros()
    old, recent = now - 5 * 3600 * MICROS, now - 10 * MINUTE  # 1m hashes keep 3 hours
    await mon.stub.IngestMetrics(pb.IngestMetricsRequest(metrics=[point(name, 4.0, old), point(name, 6.0, recent)]))
    await stored(mon, db, name, 2)
    before = mon.parts.query.from_cache
    reply = await mon.stub.QueryMetrics(query(name, now - 6 * 3600 * MICROS, now, "1m", "avg"))
    assert mon.parts.query.from_cache == before + 1
    assert got(reply) == [(buckets.floor(old, "1m"), 4.0, 1), (buckets.floor(recent, "1m"), 6.0, 1)]


# Rejections and errors ---------------------------------------------------------------------------


async def test_unknown_agents_are_reported_not_fatal(mon: Monitoring, db: asyncpg.Connection) -> None:
    agent, ghost, name = await new_agent(db), str(uuid.uuid4()), metric()
    now = now_micros()
    points = [point(name, 1.0, now, agent), point(name, 2.0, now, ghost), point(name, 3.0, now)]
    reply = await mon.stub.IngestMetrics(pb.IngestMetricsRequest(metrics=points))
    assert (reply.accepted, reply.rejected) == (2, 1)
    (why,) = reply.rejections
    assert (why.index, why.field) == (1, "metrics[1].agent_id")
    assert ghost in why.reason and "not registered" in why.reason
    await stored(mon, db, name, 2)


async def test_points_of_an_agent_deleted_before_the_flush_are_dropped(mon: Monitoring, db: asyncpg.Connection) -> None:
    agent, name = await new_agent(db), metric()
    await db.execute("DELETE FROM agents WHERE id = $1", agent)
    now = now_micros()
    batch = [StoredPoint(str(uuid.uuid4()), agent, name, "1", "{}", now)]
    batch.append(StoredPoint(str(uuid.uuid4()), None, name, "2", '{"k":"v"}', now))
    async with mon.parts.store.pool.acquire() as conn:
        written = await mon.parts.store.insert(conn, batch)
        assert written == {batch[1].id}
        assert await mon.parts.store.insert(conn, batch) == set()  # written twice: nothing new


async def test_timestamps_out_of_range_are_rejected_one_by_one(mon: Monitoring) -> None:
    name, now = metric(), now_micros()
    points = [point(name, 1.0, now + 10 * MINUTE), point(name, 1.0, now - 200 * 3600 * MICROS), point(name, 1, now)]
    reply = await mon.stub.IngestMetrics(pb.IngestMetricsRequest(metrics=points))
    assert (reply.accepted, reply.rejected) == (1, 2)
    assert [(r.field, r.reason) for r in reply.rejections] == [
        ("metrics[0].timestamp", "is more than 5 minutes in the future"),
        ("metrics[1].timestamp", "is older than the retention horizon"),
    ]


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"agg": "median"}, "agg: must be one of avg, min, max, sum, count, p95"),
        ({"window": "10m"}, "window: must be one of 1m, 5m, 1h"),
        ({"to": -3600 * MICROS}, "from: must be before to"),
        ({"from": -(10**13)}, "from: "),
        ({"window": "1m", "from": -700 * 3600 * MICROS}, "from: the range spans"),
        ({"metric_name": ""}, "metric_name: is required"),
        ({"agent_id": "nope"}, "agent_id: must be a UUID"),
    ],
)
async def test_bad_queries_are_invalid_argument_naming_the_field(
    mon: Monitoring, changes: dict[str, Any], needle: str
) -> None:
    now = now_micros()
    request = query("cpu", now - 3600 * MICROS, now, "1m", "avg")
    for field, value in changes.items():
        if field in ("from", "to"):
            getattr(request, field).FromMicroseconds(now + value)
        else:
            setattr(request, field, value)
    error = await invalid(mon.stub.QueryMetrics(request))
    assert needle in error["details"], error


async def test_malformed_points_fail_the_request(mon: Monitoring) -> None:
    bad = pb.IngestMetricsRequest(metrics=[point("ok", 1.0, now_micros()), pb.MetricPoint(name="x", value=math.nan)])
    assert "metrics[1].value: must be a finite number" in (await invalid(mon.stub.IngestMetrics(bad)))["details"]
    assert (
        "metrics: at least one point" in (await invalid(mon.stub.IngestMetrics(pb.IngestMetricsRequest())))["details"]
    )

    async def stream() -> AsyncIterator[pb.PushMetricsRequest]:
        yield pb.PushMetricsRequest(metrics=[point("ok", 1.0, now_micros())])
        yield pb.PushMetricsRequest(metrics=[pb.MetricPoint(name="bad name", value=1)])

    details = (await invalid(mon.stub.PushMetrics(stream())))["details"]
    assert "metrics[0].name" in details and "message 2 of the stream" in details


async def test_health_is_serving(mon: Monitoring) -> None:
    reply = await health_pb2_grpc.HealthStub(mon.channel).Check(
        health_pb2.HealthCheckRequest(service="ossa.monitoring.v1.MonitoringService")
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


# Durability and retention -------------------------------------------------------------------------


@pytest.fixture
async def own_redis(module_redis_url: str) -> AsyncIterator[str]:
    """Another Redis db: a buffer that the module's always-flushing service does not share."""
    url = urlunsplit(urlsplit(module_redis_url)._replace(path="/2"))
    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
    yield url


async def test_graceful_stop_flushes_the_buffer(settings: Settings, own_redis: str, db: asyncpg.Connection) -> None:
    m = await start(settings.replace(redis_url=own_redis, metrics_flush_seconds=3600.0, metrics_flush_batch=100_000))
    name, now = metric(), now_micros()
    try:
        points = [point(name, float(i), now - i * MICROS) for i in range(1500)]
        await m.stub.IngestMetrics(pb.IngestMetricsRequest(metrics=points))
        redis = aioredis.Redis.from_url(own_redis)
        assert await redis.llen(keys.METRICS_BUFFER) == 1500
        assert await db.fetchval("SELECT count(*) FROM metrics WHERE metric_name = $1", name) == 0
    finally:
        await stop(m)
    assert await db.fetchval("SELECT count(*) FROM metrics WHERE metric_name = $1", name) == 1500
    assert await redis.llen(keys.METRICS_BUFFER) == 0
    await redis.aclose()


async def test_a_batch_left_in_flight_is_written_once(
    settings: Settings, own_redis: str, db: asyncpg.Connection
) -> None:
    host, _, parts = await build_service(settings.replace(redis_url=own_redis), port=0)  # not started: no loop
    try:
        name, now = metric(), now_micros()
        flusher = parts.flusher
        ingest_points = [point(name, float(i), now - i * MICROS) for i in range(10)]
        good, _ = parse_points(ingest_points, now, 0)
        await flusher.buffer.push(good)
        taken = await flusher.buffer.take(10)  # a flush took the batch ...
        async with parts.store.pool.acquire() as conn:  # ... wrote half of it, and died
            await parts.store.insert(conn, decode(taken[:5]))
        assert await flusher.buffer.length() == 0 and len(await flusher.buffer.in_flight()) == 10
        assert await flusher.flush_once(wait=10) == 0  # the next flush finishes it (the lock is per database)
        assert await db.fetchval("SELECT count(*) FROM metrics WHERE metric_name = $1", name) == 10
        assert await flusher.buffer.in_flight() == []
    finally:
        await host.stop()


async def test_retention_prunes_old_points(mon: Monitoring, db: asyncpg.Connection) -> None:
    name = metric()
    await db.execute(
        """INSERT INTO metrics (metric_name, metric_value, timestamp)
           SELECT $1, g, now() - make_interval(hours => 169) - make_interval(secs => g) FROM generate_series(1, 25) g
           UNION ALL SELECT $1, 0, now() - interval '1 hour'""",
        name,
    )
    deleted = await mon.parts.retention.prune()
    assert deleted >= 25
    assert await db.fetchval("SELECT count(*) FROM metrics WHERE metric_name = $1", name) == 1
