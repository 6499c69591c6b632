"""Watch benchmark: start -> "completed" seen by the client, without polling and with polling.

    python benchmarks/bench_watch.py --start              # start a platform just for this run (~1-2 min)
    python benchmarks/bench_watch.py --start -n 50        # fewer samples per row
    python benchmarks/bench_watch.py --gateway 127.0.0.1:3100 --orchestrator 127.0.0.1:3012

One raw Work-stream agent (benchmarks/bench_orchestrator.BenchAgent, straight to the
orchestrator) completes each task as soon as it is leased. Executions of a one-step workflow are
run one at a time; each sample is the time from just before the start call to the moment the
client has the execution with status "completed":

* WatchExecution (the SDK's Client.run_and_wait), straight to an orchestrator and through Envoy;
* the REST long poll `GET /api/v1/executions/{id}?wait=30s&status_not=<status it has>` through
  Envoy, repeated with the status it got until that is final;
* the peers: GetExecution polled every 50 ms (gRPC, straight) and the REST GET every 50 ms (Envoy).

Ceiling (same run, same executions): start -> the agent's CompleteTask acknowledged, i.e. the
completion committed. No client can see "completed" before that; the ratio column is a row's p50
over the ceiling's p50. "calls/run" counts the client's requests per execution (start included).
With several orchestrator processes (`ossa up` starts one per core) the watcher's and the agent's
connections land on any of them, so the notification often crosses processes through Redis.
Load generator, Envoy, services and databases share this machine's cores: figures are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import auth
from benchmarks.bench_orchestrator import BenchAgent, Fleet, Orchestrator, one_step, platform_note, start_platform
from benchmarks.cpu import CpuMeter
from benchmarks.report import Result, machine_note, percentile_ms
from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_sdk import Client

FINAL = ("completed", "failed", "cancelled")
POLL_SECONDS = 0.05
CAPABILITY = "bench-watch"


@dataclass
class Row:
    result: Result
    calls: list[int] = field(default_factory=list)


class Rest:
    """One keep-alive HTTP connection to the gateway (used from a worker thread)."""

    def __init__(self, gateway: str) -> None:
        host, port = gateway.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=70)
        self.headers = {"content-type": "application/json", **auth.headers()}

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        self.conn.request(method, path, body=None if body is None else json.dumps(body), headers=self.headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {response.status} {data[:200]!r}")
        out: dict[str, Any] = json.loads(data)
        return out

    def start(self, workflow_id: str) -> str:
        return str(self.call("POST", "/api/v1/orchestrate", {"workflow_id": workflow_id})["execution_id"])

    def long_poll(self, workflow_id: str) -> int:
        execution_id, status, calls = self.start(workflow_id), "pending", 1
        while status not in FINAL:
            status = self.call("GET", f"/api/v1/executions/{execution_id}?wait=30s&status_not={status}")["status"]
            calls += 1
        return calls

    def poll(self, workflow_id: str) -> int:
        execution_id, calls = self.start(workflow_id), 1
        while True:
            calls += 1
            if self.call("GET", f"/api/v1/executions/{execution_id}")["status"] in FINAL:
                return calls
            time.sleep(POLL_SECONDS)

    def close(self) -> None:
        self.conn.close()


async def grpc_poll(orch: Orchestrator, workflow_id: str) -> int:
    execution_id, calls = await orch.start(workflow_id), 1
    while True:
        calls += 1
        reply = await orch.stub.GetExecution(pb.GetExecutionRequest(execution_id=execution_id), timeout=10)
        if pb.ExecutionStatus.Value.Name(reply.execution.status) in FINAL:
            return calls
        await asyncio.sleep(POLL_SECONDS)


async def measure(name: str, path: str, n: int, run: Callable[[], Awaitable[int]], done: dict[str, float],
                  ceiling: list[float]) -> Row:  # fmt: skip
    """n executions one at a time; `run` starts one and returns when the client has it completed."""
    row = Row(Result(name, path, [], 0.0))
    began = time.monotonic()
    for _ in range(n):
        done.clear()
        t0 = time.monotonic()
        try:
            calls = await asyncio.wait_for(run(), 30)
        except Exception as err:  # counted, and shown once
            if not row.result.errors:
                print(f"  {name}: {type(err).__name__}: {err}")
            row.result.errors += 1
            continue
        seen = time.monotonic()
        row.result.samples.append(seen - t0)
        row.calls.append(calls)
        for _ in range(100):  # the agent's ack may arrive after the client saw the change
            if done:
                break
            await asyncio.sleep(0.01)
        if done:
            ceiling.append(min(done.values()) - t0)
    row.result.elapsed = time.monotonic() - began
    return row


def print_rows(rows: list[Row], ceiling: Result) -> None:
    base = ceiling.pct(0.5)
    header = (f"{'client sees completed by':<30} {'path':<26} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
              f"{'runs/s':>7} {'calls/run':>9} {'err':>4}  {'p50/ceiling':>11}  target")  # fmt: skip
    print("\nStart -> completed seen by the client (one execution at a time, one-step workflow, echo agent)")
    print(header)
    print("-" * len(header))
    for row in [Row(ceiling), *rows]:
        r = row.result
        calls = f"{sum(row.calls) / len(row.calls):.1f}" if row.calls else "-"
        ratio = r.pct(0.5) / base if base == base and base > 0 else float("nan")
        target = "issue 15: no polling" if "poll" not in r.operation or "long" in r.operation else "(peer: polling)"
        if row.result is ceiling:
            target = "(ceiling: completion committed)"
        rate = f"{r.rate:.1f}" if r.elapsed else "-"
        print(f"{r.operation:<30} {r.path:<26} {len(r.samples):>5} {r.pct(0.5):>8.2f} {r.pct(0.95):>8.2f} "
              f"{r.pct(0.99):>8.2f} {rate:>7} {calls:>9} {r.errors:>4}  {ratio:>10.2f}x  {target}")  # fmt: skip


async def suite(args: argparse.Namespace) -> None:
    fleet = Fleet(args.registry or args.gateway)
    done: dict[str, float] = {}

    def completed(assignment: pb.Assignment, at: float) -> None:
        done[assignment.execution_id] = at

    direct, envoy = Orchestrator(args.orchestrator), Orchestrator(args.gateway)
    sdk_direct, sdk_envoy = Client(orchestrator=args.orchestrator), Client(args.gateway)  # token: $OSSA_TOKEN
    rest = Rest(args.gateway)
    try:
        workflow_id = await direct.workflow(one_step(CAPABILITY), "watch")
        ids = await fleet.register(CAPABILITY, 1)
        agent = BenchAgent(args.orchestrator, ids[0], 4, on_completed=completed)
        fleet.agents.append(agent)
        await agent.connect()
        await asyncio.sleep(0.3)
        ceiling: list[float] = []
        n = args.n
        for _ in range(args.warmup):  # connections, caches, the agent's first claim
            await sdk_direct.run_and_wait(workflow_id, timeout=30)
            await asyncio.to_thread(rest.long_poll, workflow_id)

        async def watch(client: Client) -> int:
            await client.run_and_wait(workflow_id, timeout=30)
            return 2

        plan: list[tuple[str, str, Callable[[], Awaitable[int]]]] = [
            ("WatchExecution (SDK)", "gRPC direct", lambda: watch(sdk_direct)),
            ("WatchExecution (SDK)", "gRPC via Envoy", lambda: watch(sdk_envoy)),
            ("REST long poll ?wait=30s", "REST via Envoy", lambda: asyncio.to_thread(rest.long_poll, workflow_id)),
            ("GetExecution poll 50 ms", "gRPC direct", lambda: grpc_poll(direct, workflow_id)),
            ("REST GET poll 50 ms", "REST via Envoy", lambda: asyncio.to_thread(rest.poll, workflow_id)),
        ]
        rows = [await measure(name, path, n, run, done, ceiling) for name, path, run in plan]
        print_rows(rows, Result("task completion committed", "agent CompleteTask ack", ceiling, 0.0))
        watch_p50 = min(r.result.pct(0.5) for r in rows[:3])
        poll_p50 = min(r.result.pct(0.5) for r in rows[3:])
        errors = dict(fleet.errors()) or "none"
        print(f"\nbest watch p50 {watch_p50:.1f} ms vs best polling p50 {poll_p50:.1f} ms "
              f"(ceiling p50 {percentile_ms(ceiling, 0.5):.1f} ms); agent errors: {errors}")  # fmt: skip
    finally:
        rest.close()
        await sdk_direct.close()
        await sdk_envoy.close()
        await direct.close()
        await envoy.close()
        await fleet.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--gateway", default="127.0.0.1:3100")
    parser.add_argument("--orchestrator", default="127.0.0.1:3012")
    parser.add_argument("--registry", default="", help="where the agent registers (default: through the gateway)")
    parser.add_argument("--start", action="store_true", help="start a platform in a temp dir for this run")
    parser.add_argument("--orchestrators", type=int, default=0, help="with --start: orchestrator processes")
    parser.add_argument("-n", type=int, default=100, help="executions per row")
    parser.add_argument("--warmup", type=int, default=5)
    auth.add_arguments(parser)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="ossa-bench-watch-"))
    platform = start_platform(args, scratch, CpuMeter()) if args.start else None
    auth.use_token(args, platform.data_dir if platform is not None else None)
    began = time.monotonic()
    try:
        print(f"machine before: {machine_note()}")
        print(platform_note(args, platform))
        asyncio.run(suite(args))
        print(f"\nmachine after: {machine_note()}; the run took {time.monotonic() - began:.0f} s")
    finally:
        if platform is not None:
            platform.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
