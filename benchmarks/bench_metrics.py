"""Metrics benchmark: Metrics Query latency over a table of >= 1 million rows, and ingest throughput.

    python benchmarks/bench_metrics.py --start          # a platform (`ossa up`) in a temp dir, ~3 min
    python benchmarks/bench_metrics.py --gateway 127.0.0.1:3100 --database-url postgresql://...

1. Registers 20 agents and bulk-loads --rows points (10 metrics x 20 agents over the last 7 days)
   with COPY straight into the `metrics` table, then VACUUM ANALYZE (what autovacuum does to an
   insert-only table anyway), then ingests one point per metric through the API: its first
   flush seeds the metrics' aggregate hashes from the loaded rows (metric names carry a run id,
   so the hashes are new; a hash that existed before the COPY would not see the loaded rows).
2. Ingest throughput through Envoy into 10 other metrics: REST batches (POST /api/v1/metrics,
   several processes) and gRPC PushMetrics streams, --duration seconds each; then how long
   until every accepted point is in PostgreSQL (the flusher's throughput).
3. Query latency, one request in flight, REST through Envoy (GET /api/v1/metrics), for several
   ranges, windows and aggregations over the loaded metrics (about 700 points per metric and
   hour), and two over the ingest test's burst (tens of thousands of points per metric and
   minute); beside it the same SQL run directly with asyncpg (no gRPC, no Envoy, no aggregate
   hashes). "path" says where the service answers from.

Load generator, Envoy, the services and the databases share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing as mp
import os
import random
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import auth
from benchmarks.report import machine_note
from benchmarks.report import percentile_ms as pct
from monitoring_svc import buckets
from monitoring_svc.aggregates import HORIZON
from monitoring_svc.store import MetricsStore
from ossa.monitoring.v1 import monitoring_pb2 as pb
from ossa.monitoring.v1 import monitoring_pb2_grpc

TARGET = (15, 40, 80)  # the spec's Metrics Query p50/p95/p99, ms
METRICS, AGENTS, DAYS = 10, 20, 7
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Scenario:
    label: str
    span: timedelta
    window: str
    agg: str
    one_agent: bool = False
    dense: bool = False  # over the metrics of the ingest test instead of the bulk-loaded ones

    def path(self) -> str:
        if self.one_agent or self.agg == "p95":
            return "SQL"
        kept = timedelta(seconds=HORIZON[self.window] * buckets.WINDOWS[self.window])
        return "hash" if self.span < kept else "SQL + hash"


SCENARIOS = [
    Scenario("last 1h by 1m, avg", HOUR, "1m", "avg"),
    Scenario("last 1h by 1m, p95", HOUR, "1m", "p95"),
    Scenario("last 6h by 5m, max", 6 * HOUR, "5m", "max"),
    Scenario("last 24h by 5m, avg", 24 * HOUR, "5m", "avg"),
    Scenario("last 24h by 5m, p95", 24 * HOUR, "5m", "p95"),
    Scenario("last 24h by 1h, sum", 24 * HOUR, "1h", "sum"),
    Scenario("last 24h by 5m, avg, 1 agent", 24 * HOUR, "5m", "avg", True),
    Scenario("last 7d by 1h, count", 7 * 24 * HOUR, "1h", "count"),
    Scenario("ingest burst: 1h by 1m, avg", HOUR, "1m", "avg", dense=True),
    Scenario("ingest burst: 1h by 1m, p95", HOUR, "1m", "p95", dense=True),
]


def http_json(conn: http.client.HTTPConnection, method: str, path: str, body: object = None) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"} if data else {}
    conn.request(method, path, body=data, headers={**headers, **auth.headers()})
    response = conn.getresponse()
    raw = response.read()
    return response.status, json.loads(raw) if raw else None


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# 1. Load ------------------------------------------------------------------------------------------


def register_agents(gateway: str, run: str) -> list[str]:
    host, port = gateway.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    ids = []
    for i in range(AGENTS):
        body = {"name": f"bench-{run}-{i}", "type": "monitor", "version": "1.0.0"}
        status, agent = http_json(conn, "POST", "/api/v1/agents", body)
        assert status == 201 and isinstance(agent, dict), agent
        ids.append(str(agent["id"]))
    conn.close()
    return ids


def rows(names: list[str], agents: list[str], count: int, end: datetime) -> Iterator[tuple[object, ...]]:
    step = timedelta(days=DAYS) / count
    start = end - timedelta(days=DAYS)
    rng = random.Random(7)
    for i in range(count):
        series = i // AGENTS % METRICS
        value = round(50 + 40 * rng.random() + series, 3)
        yield agents[i % AGENTS], names[series], Decimal(repr(value)), start + i * step


async def load(database_url: str, names: list[str], agents: list[str], count: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        before = await conn.fetchval("SELECT count(*) FROM metrics")
        started = time.perf_counter()
        records = rows(names, agents, count, datetime.now(UTC) - timedelta(minutes=1))
        await conn.copy_records_to_table(
            "metrics", records=records, columns=["agent_id", "metric_name", "metric_value", "timestamp"]
        )
        copied = time.perf_counter() - started
        await conn.execute("VACUUM ANALYZE metrics")
        total = await conn.fetchval("SELECT count(*) FROM metrics")
        print(
            f"loaded {count:,} rows with COPY in {copied:.1f} s ({count / copied:,.0f} rows/s), "
            f"VACUUM ANALYZE {time.perf_counter() - started - copied:.1f} s; table: {before:,} -> {total:,} rows"
        )
    finally:
        await conn.close()


# 2. Ingest ----------------------------------------------------------------------------------------


def batch(names: list[str], agents: list[str], size: int, rng: random.Random) -> list[dict[str, object]]:
    return [
        {"name": names[i % METRICS], "agent_id": agents[i // METRICS % AGENTS], "value": round(rng.random() * 100, 3)}
        for i in range(size)
    ]


Queue = Any  # multiprocessing.Queue, which is not subscriptable at run time


def _rest_worker(gateway: str, names: list[str], agents: list[str], size: int, duration: float, queue: Queue) -> None:
    host, port = gateway.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    rng = random.Random(os.getpid())
    accepted = throttled = errors = 0
    deadline = time.perf_counter() + duration
    while time.perf_counter() < deadline:
        status, reply = http_json(conn, "POST", "/api/v1/metrics", {"metrics": batch(names, agents, size, rng)})
        if status == 202 and isinstance(reply, dict):
            accepted += int(reply["accepted"])
        elif status == 503:  # the buffer is full: back off, as an agent would
            throttled += 1
            time.sleep(0.1)
        else:
            errors += 1
    conn.close()
    queue.put((accepted, throttled, errors))


def rest_ingest(gateway: str, names: list[str], agents: list[str], size: int, duration: float, procs: int) -> int:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    workers = [
        ctx.Process(target=_rest_worker, args=(gateway, names, agents, size, duration, queue)) for _ in range(procs)
    ]
    started = time.perf_counter()
    for w in workers:
        w.start()
    results = [queue.get() for _ in workers]
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    accepted, throttled, errors = (int(sum(r[k] for r in results)) for k in range(3))
    print(
        f"  {'REST POST /api/v1/metrics via Envoy':<38} {procs} processes x {size} points/request: "
        f"{accepted / elapsed:>8,.0f} points/s accepted ({accepted:,} in {elapsed:.1f} s; "
        f"503 buffer full: {throttled}, other errors: {errors})"
    )
    return accepted


async def grpc_ingest(
    gateway: str, names: list[str], agents: list[str], size: int, duration: float, streams: int
) -> int:
    rng = random.Random(11)
    template = pb.PushMetricsRequest(metrics=[pb.MetricPoint(**p) for p in batch(names, agents, size, rng)])  # type: ignore[arg-type]
    throttled = [0]

    async def stream(stub: monitoring_pb2_grpc.MonitoringServiceStub, deadline: float) -> int:
        """Streams of 20 messages, one after the other, until the deadline."""
        accepted = 0

        async def messages() -> AsyncIterator[pb.PushMetricsRequest]:
            for _ in range(20):
                if time.perf_counter() >= deadline:
                    return
                yield template

        while time.perf_counter() < deadline:
            try:
                accepted += (await stub.PushMetrics(messages())).accepted
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                throttled[0] += 1  # the buffer is full: back off (what this stream sent is not counted)
                await asyncio.sleep(0.1)
        return accepted

    async with grpc.aio.insecure_channel(gateway, interceptors=auth.interceptors()) as channel:
        stub = monitoring_pb2_grpc.MonitoringServiceStub(channel)
        started = time.perf_counter()
        accepted = sum(await asyncio.gather(*(stream(stub, started + duration) for _ in range(streams))))
        elapsed = time.perf_counter() - started
    print(
        f"  {'gRPC PushMetrics via Envoy':<38} {streams} streams x {size} points/message:    "
        f"{accepted / elapsed:>8,.0f} points/s accepted ({accepted:,} in {elapsed:.1f} s; "
        f"UNAVAILABLE buffer full: {throttled[0]})"
    )
    return accepted


async def wait_stored(
    database_url: str, names: list[str], since: datetime, accepted: int, started: float, *, quiet: bool = False
) -> None:
    """Until the flusher has written everything (the count stops growing), then its rate."""
    conn = await asyncpg.connect(database_url)
    stored, changed = 0, time.perf_counter()
    try:
        while time.perf_counter() - started < 180:
            count = await conn.fetchval(
                "SELECT count(*) FROM metrics WHERE metric_name = ANY($1::text[]) AND timestamp >= $2", names, since
            )
            if count != stored:
                stored, changed = count, time.perf_counter()
            elif stored >= accepted and time.perf_counter() - changed > 2.0:
                break
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    elapsed = changed - started
    if quiet:
        return
    print(
        f"  stored in PostgreSQL: {stored:,} points (accepted and counted: {accepted:,}), the last {elapsed:.1f} s "
        f"after ingest began: {stored / elapsed:,.0f} points/s sustained, ingest to table"
    )


# 3. Query latency ---------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: Scenario
    rest: list[float]
    sql: list[float]
    buckets: int
    points: int
    errors: int


async def latency(
    gateway: str, database_url: str, loaded: list[str], burst: list[str], agents: list[str], n: int
) -> list[Row]:
    host, port = gateway.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    store = MetricsStore(pool)
    out = []
    try:
        for s in SCENARIOS:
            names = burst if s.dense else loaded
            now = datetime.now(UTC)
            rest, sql, errors, found, points = [], [], 0, 0, 0
            for i in range(n):
                params = {"metric_name": names[i % METRICS], "window": s.window, "agg": s.agg}
                params.update({"from": rfc3339(now - s.span), "to": rfc3339(now)})
                if s.one_agent:
                    params["agent_id"] = agents[i % AGENTS]
                t0 = time.perf_counter()
                status, reply = http_json(conn, "GET", f"/api/v1/metrics?{urlencode(params)}")
                rest.append(time.perf_counter() - t0)
                if status != 200 or not isinstance(reply, list):
                    errors += 1
                elif i == 0:
                    found, points = len(reply), sum(int(b["count"]) for b in reply)
            start, end = buckets.to_micros(now - s.span), buckets.to_micros(now)
            lo, hi = buckets.floor(start, s.window), buckets.ceil(end, s.window)
            for i in range(n):
                agent = agents[i % AGENTS] if s.one_agent else None
                t0 = time.perf_counter()
                await store.buckets(names[i % METRICS], agent, lo, hi, s.window, s.agg)
                sql.append(time.perf_counter() - t0)
            out.append(Row(s, rest, sql, found, points, errors))
        plan = await pool.fetch(
            """EXPLAIN (ANALYZE, BUFFERS) SELECT date_bin('5 minutes', timestamp, 'epoch'::timestamptz) b,
                      count(*), sum(metric_value) FROM metrics
                WHERE metric_name = $1 AND timestamp >= now() - interval '24 hours' GROUP BY b ORDER BY b""",
            loaded[0],
        )
        print("\nEXPLAIN ANALYZE, last 24h by 5m of one metric (SQL path):")
        for line in plan:
            text = line[0]
            if "Scan" in text or "Heap Fetches" in text or "Execution Time" in text:
                print("   ", text.strip())
    finally:
        conn.close()
        await pool.close()
    return out


def print_table(rows_: list[Row]) -> None:
    print("\nMetrics Query latency, one request in flight (REST GET /api/v1/metrics via Envoy; SQL: asyncpg direct)")
    header = (
        f"{'scenario':<30} {'path':<10} {'buckets':>7} {'points':>8} {'n':>5} "
        f"{'REST p50':>8} {'p95':>7} {'p99':>7} {'SQL p50':>8} {'p99':>7} {'err':>4}  target p50/p95/p99"
    )
    print(header)
    print("-" * len(header))
    for r in rows_:
        print(
            f"{r.scenario.label:<30} {r.scenario.path():<10} {r.buckets:>7} {r.points:>8} {len(r.rest):>5} "
            f"{pct(r.rest, 0.5):>8.2f} {pct(r.rest, 0.95):>7.2f} {pct(r.rest, 0.99):>7.2f} "
            f"{pct(r.sql, 0.5):>8.2f} {pct(r.sql, 0.99):>7.2f} {r.errors:>4}  {'/'.join(map(str, TARGET))} ms"
        )
    every = [x for r in rows_ for x in r.rest]
    print(f"{'all scenarios':<30} {'':<10} {'':>7} {'':>8} {len(every):>5} "
          f"{pct(every, 0.5):>8.2f} {pct(every, 0.95):>7.2f} {pct(every, 0.99):>7.2f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", action="store_true", help="start a platform in a temp dir for this run")
    parser.add_argument("--gateway", default="127.0.0.1:3100")
    parser.add_argument("--database-url", default=os.environ.get("OSSA_DATABASE_URL", ""))
    parser.add_argument("--rows", type=int, default=1_200_000, help="points bulk-loaded with COPY")
    parser.add_argument("-n", type=int, default=200, help="requests per latency row")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per ingest row")
    parser.add_argument("--processes", type=int, default=2, help="REST ingest processes")
    parser.add_argument("--streams", type=int, default=4, help="gRPC ingest streams")
    parser.add_argument("--batch", type=int, default=500, help="points per request or stream message")
    auth.add_arguments(parser)
    args = parser.parse_args()

    platform = None
    if args.start:
        from ossa_cli.postgres import EmbeddedPostgres
        from tests.e2e.platform import make_platform

        platform = make_platform(Path(tempfile.mkdtemp(prefix="ossa-bench-")) / "data", {"OSSA_LOG_LEVEL": "warning"})
        platform.start()
        args.gateway = platform.gateway
        args.database_url = EmbeddedPostgres.in_data_dir(platform.data_dir, platform.port("postgres")).url()
    if not args.database_url:
        parser.error("--database-url (or OSSA_DATABASE_URL) is required without --start")
    auth.use_token(args, platform.data_dir if platform is not None else None)
    try:
        run = secrets.token_hex(3)
        names = [f"bench.{run}.m{i}" for i in range(METRICS)]
        burst = [f"bench.{run}.ingest.m{i}" for i in range(METRICS)]
        agents = register_agents(args.gateway, run)
        asyncio.run(load(args.database_url, names, agents, args.rows))
        # One point per loaded metric through the API: its first flush seeds the aggregate hashes.
        since, started = datetime.now(UTC), time.perf_counter()
        host, port = args.gateway.rsplit(":", 1)
        status, _ = http_json(
            http.client.HTTPConnection(host, int(port), timeout=10),
            "POST",
            "/api/v1/metrics",
            {"metrics": [{"name": name, "value": 1} for name in names]},
        )
        assert status == 202
        asyncio.run(wait_stored(args.database_url, names, since, METRICS, started, quiet=True))

        print(f"\nIngest throughput (cores={os.cpu_count()}):")
        since = datetime.now(UTC)
        started = time.perf_counter()
        accepted = rest_ingest(args.gateway, burst, agents, args.batch, args.duration, args.processes)
        accepted += asyncio.run(grpc_ingest(args.gateway, burst, agents, args.batch, args.duration, args.streams))
        asyncio.run(wait_stored(args.database_url, burst, since, accepted, started))

        print_table(asyncio.run(latency(args.gateway, args.database_url, names, burst, agents, args.n)))
        print(f"\nmachine: {machine_note()}")
    finally:
        if platform is not None:
            platform.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
