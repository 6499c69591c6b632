"""What starting an execution costs the servers, apart from running it: CPU ms per start, per call path.

Starts one-step executions of a workflow whose capability no agent serves (so nothing runs: the
tasks stay queued and only the start path is measured) on a platform this script starts (`ossa up`
in a temp dir), along four paths, in rotation for `--rounds` rounds:

    batch x100 direct   StartExecutions, 100 per call, straight to an orchestrator worker
                        (the floor: the per-call cost shared by 100 starts)
    gRPC direct         StartExecution, 16 in flight, straight to an orchestrator worker
    gRPC via Envoy      the same through the gateway (:3100 in a default install)
    REST via Envoy      POST /api/v1/orchestrate, 8 keep-alive connections

Per path: starts/s, the call's p50/p95/p99 (client side), and CPU ms per start of the orchestrator,
Envoy, PostgreSQL and Valkey (from /proc, every round pooled), and the orchestrator's CPU against
the batch path's of the same run. Usage: python benchmarks/bench_start_cpu.py [--n 3000] [--rounds 3]
[--env OSSA_BATCH_LINGER_MS=0 ...] (the platform's settings; the shell's OSSA_* are not passed on)
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import auth, platform_env
from benchmarks.cli_throughput import publish
from benchmarks.cpu import CpuMeter
from benchmarks.loadgen import Starts, grpc_starts, rest_starts
from benchmarks.report import machine_note, percentile_ms

COMPONENTS = ("orchestrator", "envoy", "postgres", "valkey")
Load = Callable[[str, int], Awaitable[Starts]]  # (workflow id, n) -> starts


@dataclass
class Route:
    name: str
    load: Load
    latency: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    cpu: dict[str, list[float]] = field(default_factory=dict)  # component -> ms per start, per round
    errors: int = 0


def paths(gateway: str, orchestrator: str) -> list[Route]:
    async def batch(wf: str, n: int) -> Starts:
        return await grpc_starts(orchestrator, wf, n, in_flight=4, batch=100)

    async def direct(wf: str, n: int) -> Starts:
        return await grpc_starts(orchestrator, wf, n, in_flight=16)

    async def envoy(wf: str, n: int) -> Starts:
        return await grpc_starts(gateway, wf, n, in_flight=16)

    async def rest(wf: str, n: int) -> Starts:
        return await asyncio.to_thread(rest_starts, gateway, wf, n, 8)

    return [Route("batch x100 direct", batch), Route("gRPC direct", direct), Route("gRPC via Envoy", envoy),
            Route("REST via Envoy", rest)]  # fmt: skip


async def run(args: argparse.Namespace) -> list[Route]:
    from tests.e2e.platform import make_platform

    scratch = Path(tempfile.mkdtemp(prefix="ossa-bench-start-"))
    platform = make_platform(scratch / "data", {"OSSA_LOG_LEVEL": "warning", **platform_env.settings(args)})
    platform.start(*(("--orchestrators", str(args.orchestrators)) if args.orchestrators else ()))
    cpu = CpuMeter()
    assert platform.proc is not None
    cpu.roots.append(platform.proc.pid)
    try:
        auth.use_token(args, platform.data_dir)
        orchestrator = f"127.0.0.1:{platform.port('orchestrator')}"
        workflow_id = await publish(platform.gateway, f"nobody-{secrets.token_hex(4)}")
        rows = paths(platform.gateway, orchestrator)
        for row in rows:  # warm every path (connections, prepared statements)
            await row.load(workflow_id, 100)
        for _ in range(args.rounds):
            for row in rows:
                with cpu.measure(row.name):
                    starts = await row.load(workflow_id, args.n)
                done = len(starts.sent)
                row.errors += args.n - done
                row.latency += starts.latency
                row.rates.append(done / starts.took if starts.took else 0.0)
                for name in COMPONENTS:
                    row.cpu.setdefault(name, []).append(1000 * cpu.last.get(name, 0.0) / max(1, done))
        return rows
    finally:
        platform.stop()


def report(rows: list[Route], args: argparse.Namespace) -> None:
    print(f"\nStart path only (no agent serves the capability: nothing runs), {args.n} starts x {args.rounds} "
          f"rounds per path; {machine_note()}")  # fmt: skip
    header = (f"{'path':<18} {'starts/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'err':>4}  "
              + " ".join(f"{c + ' ms':>15}" for c in COMPONENTS) + f"  {'orch vs batch':>13}")  # fmt: skip
    print(header)
    print("-" * len(header))
    floor = statistics.median(rows[0].cpu["orchestrator"]) or 1e-9
    for row in rows:
        cpu = {c: statistics.median(v) for c, v in row.cpu.items()}
        pct = " ".join(f"{percentile_ms(row.latency, q):>7.2f}" for q in (0.5, 0.95, 0.99))
        ms = " ".join(f"{cpu[c]:>15.3f}" for c in COMPONENTS)
        print(f"{row.name:<18} {statistics.median(row.rates):>8.0f} {pct} {row.errors:>4}  {ms}  "
              f"{cpu['orchestrator'] / floor:>12.1f}x")  # fmt: skip
    print("  starts/s: median over rounds; p50/p95/p99: each call (a batch call holds 100 starts); CPU: ms per\n"
          "  start, median over rounds, utime + stime from /proc of every process of that component. Target\n"
          "  (issue 12): <= 0.5 ms orchestrator CPU per one-step task, start and run together.")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="starts per path per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--orchestrators", type=int, default=0, help="orchestrator workers (default: `ossa up`'s)")
    platform_env.add_arguments(parser)
    auth.add_arguments(parser)
    args = parser.parse_args()
    report(asyncio.run(run(args)), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
