"""How close dispatch is to its transport's ceiling: the platform beside a null orchestrator, same run.

Issue 12 asks one-step executions started over REST (and over gRPC) and run by `ossa agent serve`
echo agents to complete at 1.5x (2x) Celery's tasks/s on this machine. This script measures what
the call paths themselves allow. In one run, on one platform (`ossa up` in a temp dir):

    platform   the real orchestrator behind the platform's Envoy, two echo agents (16 slots each)
    ceiling    benchmarks/null_orchestrator.py (the same gRPC service on grpc.aio and uvloop with
               nothing behind it: no PostgreSQL, Redis, interceptors or validation) behind a second
               Envoy rendered from the same template, two more echo agents registered through it
    Celery     Celery 5 + Redis, prefork x2, .delay() of the same trivial task (as bench_orchestrator)

For each start path (REST with 8 keep-alive connections, generated gRPC stubs with 16 in flight,
the SDK's Client.start with 16 in flight, StartExecutions of 100 with 4 in flight) it prints tasks/s
(first start to last completion), the ratio platform/ceiling and each against Celery, and CPU ms
per task of the orchestrator (or null orchestrator), Envoy, the agents, PostgreSQL, Valkey and this
client. Rows alternate platform and ceiling for --rounds rounds; figures are medians.
Usage: python benchmarks/bench_dispatch_ceiling.py [--tasks 3000] [--rounds 2] [--no-celery]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import auth  # noqa: E402
from benchmarks.agents_cli import CliAgents  # noqa: E402
from benchmarks.cli_throughput import publish  # noqa: E402
from benchmarks.cpu import CpuMeter  # noqa: E402
from benchmarks.loadgen import Starts, grpc_starts, rest_starts, sdk_starts  # noqa: E402
from benchmarks.report import machine_note  # noqa: E402
from ossa.orchestrator.v1 import orchestrator_pb2 as pb  # noqa: E402
from ossa.orchestrator.v1 import orchestrator_pb2_grpc  # noqa: E402

COMPONENTS = ("orchestrator", "envoy", "ossa agents", "postgres", "valkey", "bench client")
Load = Callable[[str, str, int], Awaitable[Starts]]  # (gateway, workflow id, n) -> starts


def paths(args: argparse.Namespace) -> dict[str, Load]:
    async def rest(gateway: str, wf: str, n: int) -> Starts:
        return await asyncio.to_thread(rest_starts, gateway, wf, n, args.rest_connections)

    async def stubs(gateway: str, wf: str, n: int) -> Starts:
        return await grpc_starts(gateway, wf, n, in_flight=16)

    async def sdk(gateway: str, wf: str, n: int) -> Starts:
        return await sdk_starts(gateway, wf, n, in_flight=16)

    async def batch(gateway: str, wf: str, n: int) -> Starts:
        return await grpc_starts(gateway, wf, n, in_flight=4, batch=100)

    return {f"REST x{args.rest_connections} connections": rest, "gRPC stubs, 16 in flight": stubs,
            "SDK Client.start, 16 in flight": sdk, "batch start gRPC x100": batch}  # fmt: skip


@dataclass
class Side:
    """One orchestrator (real or null) behind its own gateway, with its own agents."""

    name: str
    gateway: str
    workflow_id: str = ""
    rates: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # path -> component -> ms/task


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_null_orchestrator(log: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.null_orchestrator", "--port", "0"], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=log.open("w"), text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("port "):
        proc.kill()
        raise RuntimeError(f"the null orchestrator did not start: {log.read_text()[-2000:]}")
    return proc, int(line.split()[1])


def start_envoy(platform: Any, orchestrator_port: int, out_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A second gateway: the platform's Envoy template, its orchestrator cluster pointed elsewhere."""
    from gateway_http.envoy_config.binary import find_envoy
    from gateway_http.envoy_config.render import render_envoy_config
    from ossa_runtime.settings import Settings

    port = free_port()
    env = {**platform.env, "OSSA_GATEWAY_PORT": str(port), "OSSA_ENVOY_ADMIN_PORT": str(free_port()),
           "OSSA_DATA_DIR": str(out_dir)}  # fmt: skip
    settings = Settings.from_env(env)
    targets = {"orchestrator": [("127.0.0.1", orchestrator_port)]}
    config = render_envoy_config(settings, out_dir / "envoy", targets=targets)
    log = (out_dir / "envoy.log").open("wb")
    argv = [find_envoy(), "-c", str(config), "--log-level", "warn", "--disable-hot-restart"]
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), f"127.0.0.1:{port}"


async def wait_serving(gateway: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with grpc.aio.insecure_channel(gateway) as channel:
                await channel.channel_ready()
                return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def completed_at(gateway: str, workflow_id: str, n: int, timeout: float) -> float | None:
    """When the n-th execution of the workflow (counting completed ones only) was seen completed."""
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(gateway, interceptors=auth.interceptors()) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        request = pb.ListExecutionsRequest(workflow_id=workflow_id, status=pb.ExecutionStatus.completed,
                                           offset=n - 1, limit=1)  # fmt: skip
        while time.monotonic() < deadline:
            if (await stub.ListExecutions(request, timeout=10)).executions:
                return time.monotonic()
            await asyncio.sleep(0.05)
    return None


async def run_row(side: Side, path: str, load: Load, n: int, done_before: int, cpu: CpuMeter) -> int:
    with cpu.measure(f"{side.name}, {path}"):
        began = time.monotonic()
        starts = await load(side.gateway, side.workflow_id, n)
        sent = len(starts.sent)
        finished = await completed_at(side.gateway, side.workflow_id, done_before + sent, timeout=120)
    if finished is None or not sent:
        print(f"  {side.name}, {path}: {sent}/{n} started, not all completed in time: {starts.errors.most_common(2)}")
        return done_before + sent
    side.rates.setdefault(path, []).append(sent / (finished - began))
    per = side.cpu.setdefault(path, {})
    for name in COMPONENTS:
        per.setdefault(name, []).append(1000 * cpu.last.get(name, 0.0) / sent)
    per.setdefault("total", []).append(1000 * sum(cpu.last.values()) / sent)
    return done_before + sent


async def run(args: argparse.Namespace) -> tuple[list[Side], float | None]:
    from tests.e2e.agents import agent_token
    from tests.e2e.platform import make_platform

    scratch = Path(tempfile.mkdtemp(prefix="ossa-bench-ceiling-"))
    platform = make_platform(scratch / "data", {"OSSA_LOG_LEVEL": "warning"})
    platform.start()
    cpu = CpuMeter()
    assert platform.proc is not None
    cpu.roots.append(platform.proc.pid)
    procs: list[subprocess.Popen[Any]] = []
    agents: list[CliAgents] = []
    try:
        null, null_port = start_null_orchestrator(scratch / "null.log")
        procs.append(null)
        envoy, gateway2 = start_envoy(platform, null_port, scratch / "ceiling")
        procs.append(envoy)
        cpu.own += [null.pid, envoy.pid]
        auth.use_token(args, platform.data_dir)
        await wait_serving(gateway2)
        sides = [Side("platform", platform.gateway), Side("ceiling", gateway2)]
        for side in sides:
            capability = f"echo-{side.name}-{secrets.token_hex(3)}"
            group = CliAgents(side.gateway, capability, 2, 16, scratch / f"agents-{side.name}",
                              lambda name: agent_token(platform, name), prefix=f"bench-{side.name}")  # fmt: skip
            group.start()
            agents.append(group)
            cpu.own += group.pids
            side.workflow_id = await publish(platform.gateway, capability)
        celery = measure_celery(args)
        loads = paths(args)
        done = {side.name: 0 for side in sides}
        for side in sides:  # warm up: agents connected, every path used once
            for path, load in loads.items():
                done[side.name] = await run_row(side, path, load, 200, done[side.name], CpuMeter())
            side.rates.clear()
            side.cpu.clear()
        for _ in range(args.rounds):
            for path, load in loads.items():
                for side in sides:
                    done[side.name] = await run_row(side, path, load, args.tasks, done[side.name], cpu)
        return sides, celery
    finally:
        for group in agents:
            group.stop()
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        platform.stop()


def measure_celery(args: argparse.Namespace) -> float | None:
    if args.no_celery:
        return None
    from benchmarks.bench_orchestrator import celery_available, celery_suite

    if not celery_available():
        print("  Celery is not installed (pip install -e '.[bench]'): no Celery column")
        return None
    run_ = celery_suite(args.tasks, 50, "prefork", CpuMeter())
    return run_.throughput.rate if run_ is not None else None


def report(sides: list[Side], celery: float | None, args: argparse.Namespace) -> None:
    platform, ceiling = sides
    print(f"\nDispatch against its transport's ceiling: one-step executions, echo agents 2 x 16 slots, "
          f"{args.tasks} per row x {args.rounds} rounds; {machine_note()}")  # fmt: skip
    if celery is not None:
        print(f"Celery 5 + Redis, prefork x2, in the same run: {celery:.0f} tasks/s")
    header = (f"{'path':<30} {'platform/s':>10} {'ceiling/s':>9} {'plat/ceil':>9} {'plat/Celery':>11} "
              f"{'ceil/Celery':>11}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for path in platform.rates:
        p = statistics.median(platform.rates[path])
        c = statistics.median(ceiling.rates.get(path) or [0.0])
        vs = (lambda r: f"{r / celery:>10.2f}x") if celery else (lambda r: f"{'-':>11}")
        print(f"{path:<30} {p:>10.0f} {c:>9.0f} {p / c if c else 0:>8.2f}x {vs(p)} {vs(c)}")
    print("\nCPU ms per task (median over rounds; 'orchestrator' is the null one on the ceiling side)")
    header = f"{'path':<30} {'side':<9} " + " ".join(f"{c[:12]:>12}" for c in (*COMPONENTS, "total"))
    print(header)
    print("-" * len(header))
    for path in platform.rates:
        for side in sides:
            cells = side.cpu.get(path, {})
            ms = " ".join(f"{statistics.median(cells.get(c) or [0.0]):>12.3f}" for c in (*COMPONENTS, "total"))
            print(f"{path:<30} {side.name:<9} {ms}")
    print("  tasks/s: first start to the last completion seen (ListExecutions, 50 ms polls). The ceiling runs\n"
          "  the same Envoy template, agents and clients with no platform work behind the service: the\n"
          "  platform cannot pass it on this machine. Issue 12's goals: REST >= 1.5x Celery, gRPC >= 2x.")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000, help="executions per row")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rest-connections", type=int, default=8)
    parser.add_argument("--no-celery", action="store_true")
    auth.add_arguments(parser)
    args = parser.parse_args()
    sides, celery = asyncio.run(run(args))
    report(sides, celery, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
