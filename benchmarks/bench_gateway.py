"""Registry and gateway benchmark: latency percentiles and throughput, next to the spec's targets.

    python benchmarks/bench_gateway.py --start                 # start a platform just for this run
    python benchmarks/bench_gateway.py --gateway 127.0.0.1:3100 --registry 127.0.0.1:3011

Latency: one request in flight, REST through Envoy and gRPC (direct and through Envoy).
Throughput: several client processes with keep-alive connections, for a fixed time, against the
gateway (reads: GET /api/v1/agents/{id}; writes: POST /api/v1/agents). Load generator, Envoy,
services and databases share this machine's cores, so every figure is for the whole box.
Cached reads (agents by id, agents list with filters, workflows, executions) repeat one GET that
Envoy answers from its cache, loaded by h2load (`apt-get install -y nghttp2-client`; the rows are
skipped without it) next to a bare Envoy's direct_response ceiling of the same run
(benchmarks/cached_reads.py). Since the cache, the REST GET latency row is a cached read too.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing as mp
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import auth, platform_env
from benchmarks.bench_writes import fan_out, load, print_write_report, write_rows
from benchmarks.cached_reads import INSTALL_HINT, ReadRow, cached_read_rows, h2load, print_cached_reads
from benchmarks.cpu import CpuMeter
from benchmarks.report import Result, machine_note, print_table
from ossa.registry.v1 import registry_pb2 as pb
from ossa.registry.v1 import registry_pb2_grpc

# The spec's "Service Latency Targets" (ms) and "Throughput Targets" (requests/s).
TARGETS = {"Agent Registration": (10, 25, 50), "Health Check": (2, 5, 10)}
GATEWAY_READ_RPS, GATEWAY_WRITE_RPS = 10_000, 1_000


def http_call(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None) -> int:
    headers = {"content-type": "application/json"} if body else {}
    conn.request(method, path, body=body, headers={**headers, **auth.headers()})
    resp = conn.getresponse()
    resp.read()
    return resp.status


def agent_body() -> bytes:
    name = f"bench-{secrets.token_hex(6)}"
    return json.dumps({"name": name, "type": "worker", "version": "1.0.0", "capabilities": ["bench"]}).encode()


def settle(gateway: str, seconds: float = 180.0) -> str:
    """Wait until the search service has indexed every agent registered so far (each registration
    queues an embedding in its outbox, a few ms of CPU each): the throughput rows should not share
    the cores with a backlog from the latency rows. Returns what it waited, for the report."""
    host, port = gateway.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    marker = f"bench-settle-{secrets.token_hex(6)}"
    body = {"name": marker, "type": "worker", "version": "1.0.0", "capabilities": ["bench"]}
    started = time.monotonic()
    if http_call(conn, "POST", "/api/v1/agents", json.dumps(body).encode()) != 201:
        return "could not register the marker agent"
    query = json.dumps({"query": marker, "limit": 100}).encode()
    while time.monotonic() - started < seconds:
        conn.request("POST", "/api/v1/agents/search", body=query, headers=auth.headers())
        resp = conn.getresponse()
        data = resp.read()
        if resp.status == 404 or resp.status == 503:  # no search service: nothing to wait for
            return "no search service"
        if marker.encode() in data:
            return f"search indexing caught up after {time.monotonic() - started:.1f} s"
        time.sleep(0.5)
    return f"search indexing still behind after {seconds:.0f} s"


def rest_latency(
    gateway: str, operation: str, method: str, path: str, n: int, body: Callable[[], bytes | None]
) -> Result:
    host, port = gateway.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    samples, errors = [], 0
    started = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        status = http_call(conn, method, path, body())
        samples.append(time.perf_counter() - t0)
        errors += status >= 400
    conn.close()
    return Result(operation, f"REST {method} via Envoy", samples, time.perf_counter() - started, errors)


async def grpc_latency(operation: str, path: str, n: int, call: Callable[[], Awaitable[object]]) -> Result:
    samples = []
    started = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - t0)
    return Result(operation, path, samples, time.perf_counter() - started)


async def latency_suite(gateway: str, registry: str, n: int) -> tuple[list[Result], str]:
    results = [
        rest_latency(gateway, "Agent Registration", "POST", "/api/v1/agents", n, agent_body),
    ]
    bearer = auth.interceptors()
    async with (
        grpc.aio.insecure_channel(registry, interceptors=bearer) as direct,
        grpc.aio.insecure_channel(gateway, interceptors=bearer) as via_envoy,
    ):
        stub, stub_envoy = (
            registry_pb2_grpc.AgentRegistryServiceStub(direct),
            registry_pb2_grpc.AgentRegistryServiceStub(via_envoy),
        )

        async def create() -> object:
            name = f"bench-{secrets.token_hex(6)}"
            return await stub.CreateAgent(pb.CreateAgentRequest(name=name, type=pb.AgentType.worker, version="1.0.0"))

        results.append(await grpc_latency("Agent Registration", "gRPC direct", n, create))
        agent = (
            await stub.CreateAgent(
                pb.CreateAgentRequest(name=f"bench-{secrets.token_hex(6)}", type=pb.AgentType.worker, version="1.0.0")
            )
        ).agent
        results.append(rest_latency(gateway, "Get Agent", "GET", f"/api/v1/agents/{agent.id}", n, lambda: None))
        get = pb.GetAgentRequest(agent_id=agent.id)
        results.append(await grpc_latency("Get Agent", "gRPC direct", n, lambda: stub.GetAgent(get)))
        results.append(await grpc_latency("Get Agent", "gRPC via Envoy", n, lambda: stub_envoy.GetAgent(get)))
        results.append(rest_latency(gateway, "Health Check", "GET", "/api/v1/health", n, lambda: None))
        health = health_pb2_grpc.HealthStub(direct)
        check = health_pb2.HealthCheckRequest()
        results.append(await grpc_latency("Health Check", "gRPC grpc.health.v1 direct", n, lambda: health.Check(check)))
    return results, agent.id


def _load_worker(gateway: str, method: str, path: str, threads: int, duration: float, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    host, port = gateway.rsplit(":", 1)
    samples: list[float] = []
    errors = [0]
    deadline = time.perf_counter() + duration
    lock = threading.Lock()

    def loop() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        mine = []
        bad = 0
        while time.perf_counter() < deadline:
            body = agent_body() if method == "POST" else None
            t0 = time.perf_counter()
            status = http_call(conn, method, path, body)
            mine.append(time.perf_counter() - t0)
            bad += status >= 400
        conn.close()
        with lock:
            samples.extend(mine)
            errors[0] += bad

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    queue.put((samples, errors[0]))


def throughput(
    gateway: str, operation: str, method: str, path: str, processes: int, threads: int, duration: float
) -> Result:
    samples, errors, elapsed = fan_out(_load_worker, (gateway, method, path, threads, duration), processes)
    label = f"REST {method} via Envoy, {processes}x{threads} conns"
    return Result(operation, label, samples, elapsed, errors)


def cached_reads(args: argparse.Namespace, agent_id: str) -> None:
    """Repeated GETs answered from Envoy's cache (benchmarks/cached_reads.py), beside the ceiling."""
    if h2load() is None:
        print(f"\ncached-read rows skipped: h2load is not installed ({INSTALL_HINT})")
        return
    rows = [
        ReadRow("Cached read: agent by id", f"/api/v1/agents/{agent_id}"),
        ReadRow("Cached read: agents list", "/api/v1/agents?type=worker&status=idle&limit=20"),
        ReadRow("Cached read: workflows", "/api/v1/workflows?limit=20"),
        ReadRow("Cached read: executions", "/api/v1/executions?limit=20"),
    ]
    token = auth.headers().get("authorization", "").removeprefix("Bearer ")
    results, ceiling = cached_read_rows(
        args.gateway, rows, token=token, duration=args.cached_duration, clients=args.clients
    )
    print_cached_reads(results, ceiling)


def writes(args: argparse.Namespace) -> None:
    """The write rows (benchmarks/bench_writes.py): registration alone, the ceiling, the burst, the
    search backlog's peak and drain time."""
    report = write_rows(
        args.gateway,
        args.search_metrics,
        lambda: rest_latency(args.gateway, "Agent Registration", "POST", "/api/v1/agents", args.n, agent_body),
        lambda gateway, operation, method, path: load(
            gateway, operation, method, path, args.processes, args.threads, args.duration
        ),
        args.drain_timeout,
        args.cpu,
    )
    print_write_report(report)
    if args.cpu is not None:
        args.cpu.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default="127.0.0.1:3100")
    parser.add_argument("--registry", default="127.0.0.1:3011")
    parser.add_argument("--start", action="store_true", help="start a platform in a temp dir for this run")
    parser.add_argument("--registry-workers", type=int, default=2, help="with --start: registry processes")
    parser.add_argument("-n", type=int, default=500, help="requests per latency row")
    auth.add_arguments(parser)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per throughput row")
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--threads", type=int, default=8, help="connections per load generator process")
    parser.add_argument("--cached-duration", type=float, default=5.0, help="seconds per cached-read row (h2load)")
    parser.add_argument("--clients", type=int, default=64, help="h2load connections for the cached-read rows")
    parser.add_argument("--search-metrics", default="127.0.0.1:9114", help="search service /metrics (backlog gauge)")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="seconds to wait for the backlog to drain")
    parser.add_argument("--writes-only", action="store_true", help="only the write rows (registration)")
    platform_env.add_arguments(parser)
    args = parser.parse_args()

    platform = None
    args.cpu = None
    if args.start:
        from tests.e2e.platform import make_platform

        env = {"OSSA_LOG_LEVEL": "warning", **platform_env.settings(args)}
        platform = make_platform(Path(tempfile.mkdtemp(prefix="ossa-bench-")) / "data", env)
        platform.start("--registry-workers", str(args.registry_workers))
        args.gateway, args.registry = platform.gateway, platform.registry
        args.search_metrics = f"127.0.0.1:{platform.port('search_metrics')}"
        if platform.proc is not None:  # where the write rows' CPU went, per component of this platform
            args.cpu = CpuMeter()
            args.cpu.roots.append(platform.proc.pid)
    auth.use_token(args, platform.data_dir if platform is not None else None)
    try:
        print(f"machine before: {machine_note()}")
        if args.writes_only:
            print(f"\nbefore the write rows: {settle(args.gateway)}")
            writes(args)
            print(f"\nmachine after: {machine_note()}")
            return 0
        latency, agent_id = asyncio.run(latency_suite(args.gateway, args.registry, args.n))
        targets = {op: f"p50/p95/p99 {a}/{b}/{c} ms" for op, (a, b, c) in TARGETS.items()}
        print_table("Latency, one request in flight", latency, targets)
        print(f"\nbefore the throughput rows: {settle(args.gateway)}")
        cached_reads(args, agent_id)
        load = [
            throughput(
                args.gateway,
                "Gateway read",
                "GET",
                f"/api/v1/agents/{agent_id}",
                args.processes,
                args.threads,
                args.duration,
            ),
        ]
        print_table(
            "Throughput, concurrent keep-alive clients",
            load,
            {"Gateway read": f"{GATEWAY_READ_RPS} req/s"},
        )
        print(f"\nbefore the write rows: {settle(args.gateway)}")
        writes(args)
        print(f"\nmachine after: {machine_note()}")
        spread = statistics.pstdev([r.pct(0.5) for r in latency if r.operation == "Get Agent"])
        print(f"spread of get-agent p50 across paths: {spread:.2f} ms")
    finally:
        if platform is not None:
            platform.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
