"""Orchestrator benchmark: task assignment, execution start, tasks/s, concurrency, and Celery beside it.

    python benchmarks/bench_orchestrator.py --start              # start a platform just for this run (~3-5 min)
    python benchmarks/bench_orchestrator.py --start --quick      # the same, smaller (~1-2 min)
    python benchmarks/bench_orchestrator.py --start --orchestrators 2   # default: as many as `ossa up` runs
    python benchmarks/bench_orchestrator.py --gateway 127.0.0.1:3100 --orchestrator 127.0.0.1:3012

1. Task assignment: one agent idle on its Work stream (through Envoy, then direct to the
   orchestrator); executions of a 1-step workflow started one at a time; latency = StartExecution
   reply (sent after the task's COMMIT) -> assignment on the stream, both seen by this process on
   one monotonic clock. Issue 12's target: p50 2 ms.
2. Execution start: the StartExecution round trip, REST POST /api/v1/orchestrate via Envoy (202)
   and gRPC (direct and via Envoy); then again with 50 idle agents of another capability connected.
3. End-to-end: agents with slots and an echo handler that completes at once; N single-step
   executions queued as fast as 16 callers can, then the same N tasks as 20-step executions;
   tasks/s until the last one completes, and each task's queued -> completed time. The starts'
   round trips meanwhile are the "under load" rows (issue 12: p99 100 ms, 16 in flight, 2,000 tasks).
4. Concurrency: 100 executions of a 10-step workflow (independent steps) whose handler holds its
   lease for a few seconds, on agents with 1,000 slots in all: the peak number of tasks leased at
   once (counted here, and by the orchestrator), and whether every execution completes. Its
   assignment row is the 1,000-task burst (issue 12: p99 30 ms).
5. Celery 5 with Redis as broker and result backend (an embedded Valkey, a worker subprocess) on
   the same echo task: tasks/s and the single-task round trip beside OSSA's. Needs
   `pip install -e '.[bench]'`; skipped with a note otherwise.
6. Throughput with real agents (benchmarks/cli_throughput.py): `ossa agent serve --handler echo`
   processes (2 x 16 slots); one-step executions started over REST (keep-alive connections), over
   gRPC with the generated stubs, with the SDK's Client.start (concurrent starts share StartExecutions
   calls), and in batches (StartExecutions, gRPC and REST); tasks/s from the
   first start to the last completion and each start -> completed latency, read from PostgreSQL;
   OSSA/Celery ratio beside issue 12's goals (1.5x REST, 2x gRPC and batch); then each row's cost
   per completed task: PostgreSQL statements, transactions and round trips, Redis commands and
   orchestrator CPU ms (benchmarks/pgstats.py). --no-cli skips it.
7. OSSA vs Celery: every tasks/s and round-trip figure beside Celery's, with the ratio.

Every client runs in this one process (section 6's agents are their own processes); load
generator, Envoy, services and databases share this machine's cores, so every figure is for the
whole box. All traffic stays on 127.0.0.1. With --start, each section also prints the CPU seconds
each component used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import struct_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import auth, cli_throughput
from benchmarks.cpu import CpuMeter, count_processes
from benchmarks.report import Result, machine_note, print_table
from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa.orchestrator.v1 import orchestrator_pb2_grpc
from ossa.registry.v1 import registry_pb2 as rpb
from ossa.registry.v1 import registry_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
R = TypeVar("R")

# The spec's "Service Latency Targets" (ms) and "Throughput Targets".
TARGETS = {"Task assignment": (5, 15, 30), "Execution start": (20, 50, 100)}
CONCURRENT_WORKFLOWS, CONCURRENT_TASKS = 100, 1_000
CALL = 10.0  # seconds: the deadline of every unary call
HEARTBEAT_SECONDS = 15.0  # registration keeps an agent alive 60 s; beats keep long runs going
LEASED = (pb.TaskStatus.assigned, pb.TaskStatus.running)


def latency_targets(**issue: str) -> dict[str, str]:
    """The spec's targets per operation; `issue` (operation with spaces as _) puts issue 12's first."""
    spec = {op: f"p50/p95/p99 {a}/{b}/{c} ms" for op, (a, b, c) in TARGETS.items()}
    for key, target in issue.items():
        op = key.replace("_", " ")
        spec[op] = f"{target} (issue 12); spec {spec[op].removeprefix('p50/p95/p99 ')}"
    return spec


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


def token() -> str:
    return secrets.token_hex(4)


# Agents --------------------------------------------------------------------------------------------


@dataclass
class Flight:
    """Tasks held right now by this process's agents, and the most at once."""

    now: int = 0
    peak: int = 0
    ended: int = 0  # completed, failed or revoked
    last: float = 0.0  # when a task last started or ended

    def up(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)
        self.last = time.monotonic()

    def down(self) -> None:
        self.now -= 1
        self.ended += 1
        self.last = time.monotonic()


OnAssigned = Callable[[pb.Assignment, float], None]
OnCompleted = Callable[[pb.Assignment, float], None]


class BenchAgent:
    """A raw Work-stream agent: with `auto` each assignment is held `hold` seconds (renewing the lease
    when it is shorter) and completed with its input as output; otherwise `next()` hands it over."""

    def __init__(
        self,
        target: str,
        agent_id: str,
        slots: int,
        *,
        auto: bool = True,
        hold: float = 0.0,
        flight: Flight | None = None,
        on_assigned: OnAssigned | None = None,
        on_completed: OnCompleted | None = None,
    ) -> None:
        self.channel = grpc.aio.insecure_channel(target, interceptors=auth.interceptors())
        self.stub = orchestrator_pb2_grpc.OrchestratorServiceStub(self.channel)
        self.agent_id, self.slots, self.auto, self.hold = agent_id, slots, auto, hold
        self.flight = flight or Flight()
        self.on_assigned, self.on_completed = on_assigned, on_completed
        self.inbox: asyncio.Queue[tuple[pb.Assignment, float] | BaseException] = asyncio.Queue()
        self.running: dict[str, asyncio.Task[None]] = {}  # by task id
        self.errors: Counter[str] = Counter()
        self.renewals = 0
        self.closing = False
        self.call: Any = None
        self.reader: asyncio.Task[None] | None = None
        self.wall = 0.0

    async def connect(self) -> None:
        self.call = self.stub.Work()
        await self.call.write(pb.WorkRequest(agent_id=self.agent_id, slots=self.slots))
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.call:
                now = time.monotonic()
                self.wall = time.time()  # when the last message arrived, on PostgreSQL's clock (same machine)
                if message.WhichOneof("kind") == "cancellation":
                    revoked = message.cancellation
                    self.errors[f"lease revoked by the orchestrator: {revoked.reason}"] += 1
                    if revoked.task_id in self.running:
                        self.running[revoked.task_id].cancel()
                    continue
                assignment = message.assignment
                if self.on_assigned is not None:
                    self.on_assigned(assignment, now)
                if self.auto:
                    self.running[assignment.task_id] = asyncio.create_task(self._run(assignment))
                else:
                    self.inbox.put_nowait((assignment, now))
        except grpc.aio.AioRpcError as err:
            if not self.closing:
                self.errors[f"Work stream ended: {err.code().name} {err.details()}"] += 1
                self.inbox.put_nowait(err)

    async def _run(self, assignment: pb.Assignment) -> None:
        self.flight.up()
        try:
            if self.hold > 0:
                await self._hold(assignment)
            await self.complete(assignment)
            if self.on_completed is not None:
                self.on_completed(assignment, time.monotonic())
        except grpc.aio.AioRpcError as err:
            self.errors[f"{err.code().name}: {err.details()}"] += 1
        finally:
            self.running.pop(assignment.task_id, None)
            self.flight.down()

    async def _hold(self, assignment: pb.Assignment) -> None:
        end = time.monotonic() + self.hold
        every = max(0.5, assignment.lease_seconds / 3)
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, every))
            if time.monotonic() < end:
                await self.stub.RenewLease(
                    pb.RenewLeaseRequest(task_id=assignment.task_id, fencing_token=assignment.fencing_token),
                    timeout=CALL,
                )
                self.renewals += 1

    async def complete(self, assignment: pb.Assignment) -> pb.CompleteTaskResponse:
        reply: pb.CompleteTaskResponse = await self.stub.CompleteTask(
            pb.CompleteTaskRequest(
                task_id=assignment.task_id, fencing_token=assignment.fencing_token, output=assignment.input
            ),
            timeout=CALL,
        )
        return reply

    async def next(self, seconds: float) -> tuple[pb.Assignment, float]:
        item = await asyncio.wait_for(self.inbox.get(), seconds)
        if isinstance(item, BaseException):
            raise item
        return item

    async def close(self) -> None:
        self.closing = True
        running = list(self.running.values())
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if self.call is not None:
            self.call.cancel()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)
        await self.channel.close(None)


class Fleet:
    """Registers agents and keeps them alive with Heartbeat streams until they are released.

    Each section releases its agents when it ends: an idle Work stream left open would still be
    woken (and poll) during the later sections.
    """

    def __init__(self, registry: str) -> None:
        self.channel = grpc.aio.insecure_channel(registry, interceptors=auth.interceptors())
        self.stub = registry_pb2_grpc.AgentRegistryServiceStub(self.channel)
        self.stop = asyncio.Event()
        self.beats: dict[str, asyncio.Task[None]] = {}
        self.agents: list[BenchAgent] = []
        self.retired: Counter[str] = Counter()

    async def register(self, capability: str, count: int) -> list[str]:
        async def one() -> str:
            reply = await self.stub.CreateAgent(
                rpb.CreateAgentRequest(
                    name=f"bench-{capability}-{token()}",
                    type=rpb.AgentType.worker,
                    version="1.0.0",
                    capabilities=[capability],
                ),
                timeout=CALL,
            )
            return str(reply.agent.id)

        ids = list(await asyncio.gather(*(one() for _ in range(count))))
        self.beats.update({agent_id: asyncio.create_task(self._beat(agent_id)) for agent_id in ids})
        return ids

    async def agents_for(self, capability: str, target: str, count: int, slots: int, **kw: Any) -> list[BenchAgent]:
        ids = await self.register(capability, count)
        agents = [BenchAgent(target, agent_id, slots, **kw) for agent_id in ids]
        self.agents.extend(agents)
        await asyncio.gather(*(a.connect() for a in agents))
        await asyncio.sleep(0.3)  # the orchestrator asks the registry about each agent before its first claim
        return agents

    async def _beat(self, agent_id: str) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stop.wait(), HEARTBEAT_SECONDS)
        if self.stop.is_set():
            return
        call = self.stub.Heartbeat()
        try:
            while not self.stop.is_set():
                await call.write(rpb.HeartbeatRequest(agent_id=agent_id, status=rpb.AgentStatus.idle))
                await call.read()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), HEARTBEAT_SECONDS)
        except grpc.aio.AioRpcError as err:
            print(f"  heartbeat of agent {agent_id} failed: {err.code().name} {err.details()}")
        finally:
            call.cancel()

    def errors(self) -> Counter[str]:
        """The agents' errors since the last call."""
        total, self.retired = self.retired, Counter()
        for agent in self.agents:
            total.update(agent.errors)
            agent.errors.clear()
        return total

    async def release(self, agents: list[BenchAgent]) -> None:
        """Close the agents' Work streams and stop their heartbeats."""
        await asyncio.gather(*(a.close() for a in agents), return_exceptions=True)
        beats = [self.beats.pop(a.agent_id) for a in agents if a.agent_id in self.beats]
        for beat in beats:
            beat.cancel()
        await asyncio.gather(*beats, return_exceptions=True)
        for agent in agents:
            self.retired.update(agent.errors)
        self.agents = [a for a in self.agents if a not in agents]

    async def close(self) -> None:
        self.stop.set()
        await self.release(list(self.agents))
        await self.channel.close(None)


class Orchestrator:
    """StartExecution and friends on one channel (direct or via Envoy)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.channel = grpc.aio.insecure_channel(target, interceptors=auth.interceptors())
        self.stub = orchestrator_pb2_grpc.OrchestratorServiceStub(self.channel)

    async def workflow(self, steps: list[dict[str, Any]], name: str) -> str:
        created = await self.stub.CreateWorkflow(
            pb.CreateWorkflowRequest(
                name=f"bench-{name}-{token()}", version="1.0.0", definition=struct({"steps": steps})
            ),
            timeout=CALL,
        )
        await self.stub.PublishWorkflow(pb.PublishWorkflowRequest(workflow_id=created.workflow.id), timeout=CALL)
        return str(created.workflow.id)

    async def start(self, workflow_id: str, context: dict[str, Any] | None = None) -> str:
        reply = await self.stub.StartExecution(
            pb.StartExecutionRequest(workflow_id=workflow_id, context=struct(context or {})), timeout=CALL
        )
        return str(reply.execution_id)

    async def close(self) -> None:
        await self.channel.close(None)


async def bounded(call: Callable[[T], Awaitable[R]], items: Iterable[T], concurrency: int) -> list[R | BaseException]:
    """`call` on every item with at most `concurrency` in flight; results (or exceptions) in order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(item: T) -> R:
        async with gate:
            return await call(item)

    return list(await asyncio.gather(*(one(i) for i in items), return_exceptions=True))


def one_step(capability: str, **fields_: Any) -> list[dict[str, Any]]:
    return [{"id": "echo", "capability": capability, "max_retries": 0, **fields_}]


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TOKEN = re.compile(r"fencing token \d+")


def error_note(errors: Counter[str]) -> None:
    """The most common errors, counted alike when they differ only in ids and tokens."""
    alike: Counter[str] = Counter()
    for text, n in errors.items():
        alike[TOKEN.sub("fencing token <n>", UUID.sub("<id>", text))] += n
    for text, n in alike.most_common(5):
        print(f"  error x{n}: {text}")


# 1. Task assignment --------------------------------------------------------------------------------


@dataclass
class Assignment:
    from_lease: list[float] = field(default_factory=list)  # the lease's commit (PostgreSQL time) -> receipt
    from_reply: list[float] = field(default_factory=list)
    from_request: list[float] = field(default_factory=list)
    round_trip: list[float] = field(default_factory=list)
    early: int = 0  # assignments that arrived before StartExecution's reply
    errors: int = 0
    elapsed: float = 0.0


async def assignment_latency(fleet: Fleet, target: str, n: int, warmup: int = 10) -> Assignment:
    """Sequential: start a 1-step execution, wait for its assignment on the idle agent's stream, complete it."""
    orch = Orchestrator(target)
    capability = f"assign-{token()}"
    workflow_id = await orch.workflow(one_step(capability), "assign")
    (agent,) = agents = await fleet.agents_for(capability, target, 1, 1, auto=False)
    out = Assignment()
    started = time.monotonic()
    try:
        for i in range(warmup + n):
            if i == warmup:
                out, started = Assignment(), time.monotonic()
            t_send = time.monotonic()
            try:
                execution_id = await orch.start(workflow_id)
                t_reply = time.monotonic()
                while True:
                    assignment, t_arrived = await agent.next(5.0)
                    wall = agent.wall
                    if assignment.execution_id == execution_id:
                        break
                    await agent.complete(assignment)  # a late one from a timed-out round
                await agent.complete(assignment)
                t_done = time.monotonic()
            except (TimeoutError, grpc.aio.AioRpcError) as err:
                out.errors += 1
                agent.errors[f"{type(err).__name__}: {err}"] += 1
                if out.errors >= 10:
                    print(f"  task assignment via {target}: giving up after {out.errors} errors")
                    break
                continue
            out.early += t_arrived < t_reply
            leased = assignment.lease_expires_at.ToDatetime(UTC).timestamp() - assignment.lease_seconds
            out.from_lease.append(max(0.0, wall - leased))
            out.from_reply.append(max(0.0, t_arrived - t_reply))
            out.from_request.append(t_arrived - t_send)
            out.round_trip.append(t_done - t_send)
        out.elapsed = time.monotonic() - started
    finally:
        await fleet.release(agents)
        await orch.close()
    return out


# 2. Execution start ---------------------------------------------------------------------------------


def rest_start(gateway: str, workflow_id: str, n: int) -> tuple[Result, list[str]]:
    host, port = gateway.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    samples, errors, ids = [], 0, []
    body = json.dumps({"workflow_id": workflow_id, "context": {"bench": True}}).encode()
    started = time.monotonic()
    for _ in range(n):
        t0 = time.monotonic()
        conn.request(
            "POST", "/api/v1/orchestrate", body=body, headers={"content-type": "application/json", **auth.headers()}
        )
        resp = conn.getresponse()
        data = resp.read()
        samples.append(time.monotonic() - t0)
        if resp.status == 202:
            ids.append(json.loads(data)["execution_id"])
        else:
            errors += 1
    conn.close()
    return Result("Execution start", "REST POST /api/v1/orchestrate via Envoy", samples, time.monotonic() - started,
                  errors), ids  # fmt: skip


async def grpc_start(orch: Orchestrator, label: str, workflow_id: str, n: int) -> tuple[Result, list[str]]:
    samples, ids, errors = [], [], 0
    started = time.monotonic()
    for _ in range(n):
        t0 = time.monotonic()
        try:
            ids.append(await orch.start(workflow_id, {"bench": True}))
        except grpc.aio.AioRpcError:
            errors += 1
            continue
        samples.append(time.monotonic() - t0)
    return Result("Execution start", label, samples, time.monotonic() - started, errors), ids


async def start_latency(fleet: Fleet, gateway: str, orchestrator: str, n: int, idle_agents: int) -> list[Result]:
    """Executions of a workflow no agent serves (they stay queued), cancelled afterwards. The last row
    has `idle_agents` agents of another capability connected to the orchestrator, as in a real fleet."""
    direct, via_envoy = Orchestrator(orchestrator), Orchestrator(gateway)
    try:
        workflow_id = await direct.workflow(one_step(f"nobody-{token()}"), "start")
        ids = []
        for _ in range(10):  # warm-up: connections, workflow cache
            ids.append(await via_envoy.start(workflow_id))
            ids.append(await direct.start(workflow_id))
        rest, more = await asyncio.to_thread(rest_start, gateway, workflow_id, n)
        ids += more
        rows = [rest]
        row, more = await grpc_start(direct, "gRPC direct", workflow_id, n)
        rows.append(row)
        ids += more
        row, more = await grpc_start(via_envoy, "gRPC via Envoy", workflow_id, n)
        rows.append(row)
        ids += more
        if idle_agents:
            idle = await fleet.agents_for(f"idle-{token()}", gateway, idle_agents, 4)
            try:
                await asyncio.sleep(1.0)
                row, more = await grpc_start(direct, f"gRPC direct, {idle_agents} idle agents on", workflow_id, n)
            finally:
                await fleet.release(idle)
            rows.append(row)
            ids += more

        # Leave nothing queued behind: every later claim would have to skip these tasks.
        async def cancel(execution_id: str) -> None:
            await direct.stub.CancelExecution(pb.CancelExecutionRequest(execution_id=execution_id), timeout=CALL)

        failed = [r for r in await bounded(cancel, ids, 8) if isinstance(r, BaseException)]
        if failed:
            print(f"  {len(failed)} of {len(ids)} queued executions could not be cancelled: {failed[0]}")
        return rows
    finally:
        await direct.close()
        await via_envoy.close()


# 3. End-to-end tasks/s ------------------------------------------------------------------------------


@dataclass
class Throughput:
    end_to_end: Result
    start_under_load: Result
    completed: int
    queued_in: float  # seconds until the last StartExecution returned


async def throughput(
    fleet: Fleet,
    target: str,
    n: int,
    agents: int,
    slots: int,
    steps: int = 1,
    callers: int = 16,
    timeout: float = 120.0,
) -> Throughput:
    """n tasks: n executions of a 1-step workflow, or n/steps executions of `steps` independent steps."""
    orch = Orchestrator(target)
    capability = f"echo-{token()}"
    definition = [{"id": f"s{i}", "capability": capability, "max_retries": 0} for i in range(steps)]
    workflow_id = await orch.workflow(definition, "echo")
    executions = n // steps
    n = executions * steps
    sent: dict[int, float] = {}
    round_trip: list[float] = []
    all_done = asyncio.Event()
    last = [0.0]

    def completed(assignment: pb.Assignment, now: float) -> None:
        seq = int(assignment.input.fields["context"].struct_value.fields["seq"].number_value)
        round_trip.append(now - sent[seq])
        last[0] = now
        if len(round_trip) >= n:
            all_done.set()

    pool = await fleet.agents_for(capability, target, agents, slots, on_completed=completed)
    start_samples: list[float] = []

    async def start(i: int) -> None:
        sent[i] = t0 = time.monotonic()
        await orch.start(workflow_id, {"seq": i})
        start_samples.append(time.monotonic() - t0)

    try:
        began = time.monotonic()
        outcomes = await bounded(start, range(executions), callers)
        queued_in = time.monotonic() - began
        start_errors = sum(isinstance(o, BaseException) for o in outcomes)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(all_done.wait(), timeout)
        elapsed = (last[0] or time.monotonic()) - began
        shape = "1-step executions" if steps == 1 else f"{executions} executions x {steps} steps"
        path = f"{shape}, {agents}x{slots} slots"
        e2e = Result("End-to-end", path, list(round_trip), elapsed, n - len(round_trip))
        starts = Result("Execution start", f"under load, {callers} in flight ({steps}-step)", start_samples,
                        queued_in, start_errors)  # fmt: skip
        return Throughput(e2e, starts, len(round_trip), queued_in)
    finally:
        await fleet.release(pool)
        await orch.close()


# 4. Concurrency --------------------------------------------------------------------------------------


@dataclass
class Concurrency:
    executions: int
    tasks: int
    peak_client: int
    peak_server: int
    all_assigned_after: float | None
    completed_executions: Counter[str]
    elapsed: float
    assign_latency: Result
    renewals: int


async def count_leased(orch: Orchestrator, execution_ids: list[str]) -> int:
    async def one(execution_id: str) -> int:
        reply = await orch.stub.ListExecutionTasks(
            pb.ListExecutionTasksRequest(execution_id=execution_id), timeout=CALL
        )
        return sum(t.status in LEASED for t in reply.tasks)

    counts = await bounded(one, execution_ids, 16)
    return sum(c for c in counts if isinstance(c, int))


async def concurrency(
    fleet: Fleet,
    gateway: str,
    orchestrator: str,
    *,
    executions: int,
    steps: int,
    agents: int,
    slots: int,
    hold: float,
    lease_seconds: int,
    timeout: float = 120.0,
) -> Concurrency:
    via_envoy, direct = Orchestrator(gateway), Orchestrator(orchestrator)
    capability = f"hold-{token()}"
    definition = [
        {"id": f"s{i}", "capability": capability, "lease_seconds": lease_seconds, "max_retries": 0}
        for i in range(steps)
    ]
    workflow_id = await via_envoy.workflow(definition, "hold")
    total = executions * steps
    flight = Flight()
    replied: dict[str, float] = {}
    arrived: dict[str, tuple[str, float]] = {}  # task id -> (execution id, when its assignment arrived)
    all_assigned = asyncio.Event()

    def assigned(assignment: pb.Assignment, now: float) -> None:
        arrived[assignment.task_id] = (assignment.execution_id, now)
        if len(arrived) >= total:
            all_assigned.set()

    kw = {"hold": hold, "flight": flight, "on_assigned": assigned}
    pool = await fleet.agents_for(capability, gateway, agents, slots, **kw)

    async def start(i: int) -> str:
        execution_id = await via_envoy.start(workflow_id, {"seq": i})
        replied[execution_id] = time.monotonic()
        return execution_id

    try:
        began = time.monotonic()
        outcomes = await bounded(start, range(executions), 16)
        ids = [o for o in outcomes if isinstance(o, str)]
        # The orchestrator's own count, while the leases are held (or as soon as all are handed out).
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(all_assigned.wait(), hold * 0.8)
        peak_server = await count_leased(direct, ids)
        # Until every task has ended, or nothing has been held or handed out for a while (a failed
        # execution never hands out its remaining steps).
        deadline = time.monotonic() + timeout
        while flight.ended < total and time.monotonic() < deadline:
            if flight.now == 0 and time.monotonic() - flight.last > 2.0:
                break
            await asyncio.sleep(0.05)
        elapsed = (flight.last or time.monotonic()) - began

        async def status(execution_id: str) -> str:
            reply = await direct.stub.GetExecution(pb.GetExecutionRequest(execution_id=execution_id), timeout=CALL)
            return str(pb.ExecutionStatus.Value.Name(reply.execution.status))

        # Executions whose leases expired end when the orchestrator's sweeper gets to them.
        settle = time.monotonic() + 15.0
        while True:
            statuses: Counter[str] = Counter(
                s if isinstance(s, str) else "error" for s in await bounded(status, ids, 16)
            )
            if statuses["pending"] + statuses["running"] == 0 or time.monotonic() > settle:
                break
            await asyncio.sleep(0.5)
        statuses["not started"] = executions - len(ids)
        latencies = [max(0.0, t - replied[e]) for e, t in arrived.values() if e in replied]
        last_assigned = max((t for _, t in arrived.values()), default=None)
        assign = Result("Task assignment", f"under load: {total} tasks, {agents}x{slots} slots", latencies,
                        (last_assigned or began) - began, total - len(arrived))  # fmt: skip
        return Concurrency(
            executions=executions,
            tasks=total,
            peak_client=flight.peak,
            peak_server=peak_server,
            all_assigned_after=(last_assigned - began) if last_assigned and len(arrived) >= total else None,
            completed_executions=+statuses,
            elapsed=elapsed,
            assign_latency=assign,
            renewals=sum(a.renewals for a in pool),
        )
    finally:
        await fleet.release(pool)
        await via_envoy.close()
        await direct.close()


# 5. Celery -------------------------------------------------------------------------------------------


@dataclass
class CeleryRun:
    throughput: Result
    latency: Result
    pool: str
    note: str


def _timestamp(value: Any) -> float:
    """A Celery date_done (a datetime, or an ISO string in older versions) as epoch seconds."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(value.timestamp())


def celery_available() -> bool:
    try:
        import celery  # noqa: F401
    except ImportError:
        return False
    return True


def celery_suite(tasks: int, n: int, pool: str, cpu: CpuMeter, timeout: float = 120.0) -> CeleryRun | None:
    from tests.servers import start_valkey

    scratch = Path(tempfile.mkdtemp(prefix="ossa-bench-celery-"))
    url, stop = start_valkey(scratch)
    os.environ["OSSA_BENCH_CELERY_URL"] = url
    celery_bin = shutil.which("celery", path=str(Path(sys.executable).parent)) or "celery"
    log = (scratch / "worker.log").open("wb")
    worker = subprocess.Popen(
        [celery_bin, "-A", "benchmarks.celery_app", "worker", "--concurrency", "2", "-P", pool,
         "--loglevel", "warning", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    cpu.roots.append(worker.pid)
    try:
        from benchmarks.celery_app import echo

        deadline = time.monotonic() + 60
        while True:  # the first task waits for the worker to come up
            try:
                echo.delay(0).get(timeout=5)
                break
            except Exception:
                if worker.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    tail = (scratch / "worker.log").read_text(errors="replace")[-2000:]
                    print(f"  the Celery worker did not start:\n{tail}")
                    return None
        for i in range(20):
            echo.delay(i).get(timeout=10)
        samples, errors = [], 0
        began = time.monotonic()
        for i in range(n):
            t0 = time.monotonic()
            try:
                echo.delay({"seq": i}).get(timeout=10)
            except Exception:
                errors += 1
                continue
            samples.append(time.monotonic() - t0)
        latency = Result("Single-task round trip", f"Celery {pool} x2, .delay().get()", samples,
                         time.monotonic() - began, errors)  # fmt: skip
        with cpu.measure(f"Celery, {tasks} tasks"):
            began, began_wall = time.monotonic(), time.time()
            pending = []
            for i in range(tasks):
                pending.append((time.time(), echo.delay({"seq": i})))
            sent_in = time.monotonic() - began
            stored, errors = [], 0
            for sent, result in pending:
                try:
                    result.get(timeout=max(1.0, timeout - (time.monotonic() - began)))
                    stored.append((sent, _timestamp(result.date_done)))
                except Exception:
                    errors += 1
            seen = time.monotonic() - began
        # The same yardstick as OSSA's: until each result was stored (the worker's date_done, wall clock).
        samples = [max(0.0, done - sent) for sent, done in stored]
        elapsed = max((done for _, done in stored), default=began_wall) - began_wall
        note = (
            f"  {len(samples)}/{tasks} tasks: the {tasks} .delay() calls took {sent_in:.2f} s; the last result was "
            f"stored after {elapsed:.2f} s and seen by the client after {seen:.2f} s (latency = sent -> date_done)"
        )
        run = Result("End-to-end", f"Celery {pool} x2, {tasks} tasks", samples, elapsed, errors)
        return CeleryRun(run, latency, pool, note)
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
        stop()
        shutil.rmtree(scratch, ignore_errors=True)


# The run ---------------------------------------------------------------------------------------------


@dataclass
class Plan:
    latency_n: int = 300  # samples per latency row (1, 2, and Celery's round trip)
    tasks: int = 2000  # end-to-end (3)
    agents: int = 4
    slots: int = 8
    fanout_steps: int = 20
    executions: int = CONCURRENT_WORKFLOWS  # concurrency (4)
    steps: int = CONCURRENT_TASKS // CONCURRENT_WORKFLOWS
    hold_agents: int = 10
    hold_slots: int = 100
    hold: float = 5.0
    lease_seconds: int = 30
    celery_tasks: int = 2000  # Celery (5)
    celery_n: int = 300


@dataclass
class OssaFigures:
    round_trip: Result | None = None
    end_to_end: Result | None = None
    fanout: Result | None = None
    fanout_steps: int = 0


async def ossa_suite(args: argparse.Namespace, plan: Plan, cpu: CpuMeter) -> OssaFigures:
    figures = OssaFigures()
    fleet = Fleet(args.registry or args.gateway)
    try:
        # 1. Task assignment, an idle agent per path.
        rows, trips, early = [], [], []
        with cpu.measure("task assignment"):
            for label, target in (("via Envoy", args.gateway), ("direct", args.orchestrator)):
                a = await assignment_latency(fleet, target, plan.latency_n)
                rows.append(Result("Task assignment", f"Work stream {label}, lease commit -> agent", a.from_lease,
                                   a.elapsed, a.errors))  # fmt: skip
                rows.append(Result("(bound)", f"Work stream {label}, from reply", a.from_reply, a.elapsed))
                rows.append(Result("(bound)", f"Work stream {label}, from request sent", a.from_request,
                                   a.elapsed))  # fmt: skip
                trips.append(Result("Single-task round trip", f"{label}: start -> CompleteTask answered",
                                    a.round_trip, a.elapsed))  # fmt: skip
                early.append(f"{label} {a.early}/{len(a.from_reply)}")
        print_table("1. Task assignment latency, one execution at a time, an idle agent", rows + trips,
                    latency_targets(Task_assignment="p50 2 ms"))  # fmt: skip
        print(
            "  'lease commit -> agent' = the agent's receipt (wall clock) minus the lease's time in PostgreSQL "
            "(lease_expires_at - lease_seconds: the start of the transaction that leased it, so a little before its "
            "COMMIT: an upper bound). 'from reply' = assignment on the stream minus StartExecution's reply (0 when it "
            f"came first: {', '.join(early)}); 'from request sent' adds the StartExecution round trip. "
            "Round trip = start sent -> the agent's CompleteTask answered (the execution is completed)."
        )
        figures.round_trip = trips[0]
        error_note(fleet.errors())
        cpu.flush()

        # 2. Execution start.
        with cpu.measure("execution start"):
            rows = await start_latency(fleet, args.gateway, args.orchestrator, plan.latency_n, args.idle_agents)
        print_table("2. Workflow execution start (StartExecution round trip, one in flight)", rows, latency_targets())
        if args.idle_agents:
            print(
                f"  'idle agents on': {args.idle_agents} agents of another capability hold Work streams (4 slots each) "
                "while the executions start"
            )
        cpu.flush()

        # 3. End-to-end tasks/s: single-step executions, then the same number of tasks fanned out.
        rows, notes = [], []
        for steps in (1, plan.fanout_steps):
            with cpu.measure(f"end-to-end, {plan.tasks} tasks, {steps}-step executions"):
                t = await throughput(fleet, args.gateway, plan.tasks, plan.agents, plan.slots, steps=steps)
            rows += [t.end_to_end, t.start_under_load]
            notes.append(
                f"  {t.end_to_end.path}: {t.completed}/{len(t.end_to_end.samples) + t.end_to_end.errors} tasks "
                f"completed in {t.end_to_end.elapsed:.2f} s = {t.end_to_end.rate:.0f} tasks/s; the last "
                f"StartExecution returned after {t.queued_in:.2f} s"
            )
            if steps == 1:
                figures.end_to_end = t.end_to_end
            else:
                figures.fanout, figures.fanout_steps = t.end_to_end, steps
        print_table(
            f"3. End-to-end: {plan.tasks} echo tasks, agents via Envoy, executions started by 16 callers via Envoy "
            "(latency = start sent -> CompleteTask answered)",
            rows,
            latency_targets(Execution_start="p99 100 ms with 16 in flight while 2,000 tasks run"),
            rate="tasks/s",
        )
        print("\n".join(notes))
        error_note(fleet.errors())
        cpu.flush()

        # 4. Concurrency.
        with cpu.measure("concurrency"):
            c = await concurrency(
                fleet,
                args.gateway,
                args.orchestrator,
                executions=plan.executions,
                steps=plan.steps,
                agents=plan.hold_agents,
                slots=plan.hold_slots,
                hold=plan.hold,
                lease_seconds=plan.lease_seconds,
            )
        print_table(
            f"4. Concurrency: {c.executions} executions x {plan.steps} independent steps, each task holds its "
            f"lease {plan.hold:g} s",
            [c.assign_latency],
            latency_targets(Task_assignment=f"p99 30 ms in the {CONCURRENT_TASKS:,}-task burst"),
        )
        assigned = f"{c.all_assigned_after:.2f} s" if c.all_assigned_after is not None else "never (timeout)"
        ok_tasks = "meets" if c.peak_client >= CONCURRENT_TASKS else "BELOW"
        ok_flows = c.completed_executions.get("completed", 0)
        print(
            f"  tasks leased at once: peak {c.peak_client} (agents' count), {c.peak_server} (orchestrator's "
            f"ListExecutionTasks, sampled while held) of {c.tasks}: {ok_tasks} the {CONCURRENT_TASKS:,} target"
        )
        print(f"  all {c.tasks} tasks assigned {assigned} after the first start; lease renewals: {c.renewals}")
        print(
            f"  executions: {dict(c.completed_executions)}: {ok_flows}/{c.executions} completed "
            f"(target {CONCURRENT_WORKFLOWS} concurrent workflows) in {c.elapsed:.2f} s"
        )
        error_note(fleet.errors())
        cpu.flush()
    finally:
        await fleet.close()
    return figures


def compare(ossa: OssaFigures, celery: CeleryRun, more: list[tuple[str, float, float]]) -> None:
    """The final table; `more` adds (metric, OSSA, Celery) rows (section 6's)."""
    print(f"\n7. OSSA vs Celery ({celery.pool} x2, Redis broker + result backend), the same echo task, this machine")
    header = f"{'metric':<58} {'OSSA':>10} {'Celery':>10} {'OSSA/Celery':>12}"
    print(header)
    print("-" * len(header))
    rows: list[tuple[str, float, float]] = []
    if ossa.end_to_end is not None:
        rows.append(("tasks/s end-to-end (1-step executions, raw stream agents)", ossa.end_to_end.rate,
                     celery.throughput.rate))  # fmt: skip
    if ossa.fanout is not None:
        rows.append((f"tasks/s end-to-end ({ossa.fanout_steps}-step executions)", ossa.fanout.rate,
                     celery.throughput.rate))  # fmt: skip
    rows += more
    if ossa.round_trip is not None:
        for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            rows.append((f"single-task round trip {name} ms", ossa.round_trip.pct(q), celery.latency.pct(q)))
    for name, mine, theirs in rows:
        ratio = mine / theirs if theirs else float("nan")
        print(f"{name:<58} {mine:>10.2f} {theirs:>10.2f} {ratio:>12.2f}")
    print(
        "  tasks/s ratio > 1: OSSA faster; latency ratio > 1: OSSA slower. Issue 12's goals: REST with\n"
        "  `ossa agent serve` agents >= 1.5x Celery's tasks/s (then 3x), SDK gRPC and batch start >= 2x.\n"
        "  Single-task round trip: OSSA = StartExecution via Envoy -> assignment -> CompleteTask answered, Celery = "
        ".delay() -> .get().\n"
        "  OSSA persists every execution, task, lease and attempt in PostgreSQL and mirrors them to Redis; Celery "
        "keeps messages and results in Redis only."
    )


def plan_for(args: argparse.Namespace) -> Plan:
    quick = {"latency_n": 100, "tasks": 500, "celery_tasks": 500, "celery_n": 100, "hold": 3.0}
    plan = Plan(**quick) if args.quick else Plan()  # type: ignore[arg-type]
    if args.n:
        plan.latency_n = plan.celery_n = args.n
    if args.tasks:
        plan.tasks = plan.celery_tasks = args.tasks
    if args.hold:
        plan.hold = args.hold
    if args.lease_seconds:
        plan.lease_seconds = args.lease_seconds
    if args.fanout_steps:
        plan.fanout_steps = args.fanout_steps
    return plan


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--gateway", default="127.0.0.1:3100")
    parser.add_argument("--orchestrator", default="127.0.0.1:3012")
    parser.add_argument("--registry", default="", help="where agents register (default: through the gateway)")
    parser.add_argument("--start", action="store_true", help="start a platform in a temp dir for this run")
    auth.add_arguments(parser)
    parser.add_argument(
        "--orchestrators", type=int, default=0, help="with --start: orchestrator processes (default: `ossa up`'s)"
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts: about 1-2 minutes in all")
    parser.add_argument("-n", type=int, default=0, help="samples per latency row (default 300, quick 100)")
    parser.add_argument("--tasks", type=int, default=0, help="tasks in the end-to-end runs (default 2000, quick 500)")
    parser.add_argument("--fanout-steps", type=int, default=0, help="steps per execution in 3's second row (20)")
    parser.add_argument("--hold", type=float, default=0.0, help="seconds each concurrency task holds its lease")
    parser.add_argument("--lease-seconds", type=int, default=0, help="lease of the concurrency steps (default 30)")
    parser.add_argument("--celery-pool", default="prefork", choices=("prefork", "threads", "solo"))
    parser.add_argument("--no-celery", action="store_true", help="skip the Celery comparison")
    parser.add_argument("--cli-only", action="store_true", help="skip sections 1-4 (Celery and 6 only)")
    parser.add_argument(
        "--idle-agents", type=int, default=50, help="agents of another capability connected in 2's last row (0: none)"
    )
    parser.add_argument("--budget", type=float, default=600.0, help="seconds sections 1-4 (and 6) may take in all")
    cli_throughput.add_arguments(parser)
    return parser.parse_args()


def start_platform(args: argparse.Namespace, scratch: Path, cpu: CpuMeter) -> Any:
    """With --start: `ossa up` in `scratch` (its --orchestrators only when given); the addresses into `args`."""
    from tests.e2e.platform import make_platform

    platform = make_platform(scratch / "data", {"OSSA_LOG_LEVEL": "warning"})
    platform.start(*(("--orchestrators", str(args.orchestrators)) if args.orchestrators else ()))
    assert platform.proc is not None
    cpu.roots.append(platform.proc.pid)
    args.gateway = platform.gateway
    args.orchestrator = f"127.0.0.1:{platform.port('orchestrator')}"
    return platform


def platform_note(args: argparse.Namespace, platform: Any) -> str:
    """The header line: how many orchestrator processes ran (counted in /proc) and where the platform is."""
    if platform is not None:
        ran = count_processes(platform.proc.pid, "orchestrator_svc")
        how = f"--orchestrators {args.orchestrators}" if args.orchestrators else "`ossa up`'s default"
        where = f"{ran} orchestrator process(es) ({how}), "
    else:
        where = f"{count_processes(None, 'orchestrator_svc')} orchestrator process(es) on this machine, "
    return f"platform: {where}gateway {args.gateway}, orchestrator {args.orchestrator}"


def run_celery(args: argparse.Namespace, plan: Plan, cpu: CpuMeter) -> CeleryRun | None:
    if args.no_celery:
        return None
    if not celery_available():
        print("\n5. Celery comparison skipped: celery is not installed (pip install -e '.[bench]')")
        return None
    run = celery_suite(plan.celery_tasks, plan.celery_n, args.celery_pool, cpu)
    if run is not None:
        print_table("5. Celery, the same echo task", [run.latency, run.throughput], {}, rate="tasks/s")
        print(run.note)
        cpu.flush()
    return run


def run_cli_section(args: argparse.Namespace, plan: Plan, cpu: CpuMeter, platform: Any, scratch: Path,
                    celery: CeleryRun | None) -> list[tuple[str, float, float]]:  # fmt: skip
    """Section 6; its rows for the final table."""
    if args.no_cli:
        return []
    servers = cli_throughput.servers_for(args, platform, scratch / "cli-agents")
    n = args.cli_tasks or plan.tasks
    try:
        section = asyncio.run(asyncio.wait_for(cli_throughput.run_section(args, servers, n, cpu), args.budget))
    except TimeoutError:
        print(f"\n6. did not finish within --budget {args.budget:g} s; stopped there")
        return []
    rate = celery.throughput.rate if celery is not None else None
    what = f"{celery.pool} x2, {len(celery.throughput.samples)} tasks" if celery is not None else ""
    cli_throughput.print_section(section, rate, what, args.pg_top)
    cpu.flush()
    return cli_throughput.summary_rows(section, rate or 0.0)


def main() -> int:
    args = parse_args()
    plan = plan_for(args)
    cpu = CpuMeter()
    scratch = Path(tempfile.mkdtemp(prefix="ossa-bench-orchestrator-"))
    platform = start_platform(args, scratch, cpu) if args.start else None
    auth.use_token(args, platform.data_dir if platform is not None else None)
    began, finished = time.monotonic(), False
    try:
        print(f"machine before: {machine_note()}")
        print(platform_note(args, platform))
        try:
            figures = OssaFigures() if args.cli_only else asyncio.run(asyncio.wait_for(ossa_suite(args, plan, cpu),
                                                                                      args.budget))  # fmt: skip
        except TimeoutError:
            print(f"\nthe OSSA sections did not finish within --budget {args.budget:g} s; stopped there")
            figures = OssaFigures()
        celery = run_celery(args, plan, cpu)
        more = run_cli_section(args, plan, cpu, platform, scratch, celery)
        if celery is not None:
            compare(figures, celery, more)
        print(f"\nmachine after: {machine_note()}; the run took {time.monotonic() - began:.0f} s")
        finished = True
    finally:
        if platform is not None:
            platform.stop()
        if finished:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"the platform's data and logs (and the CLI agents' logs) are kept in {scratch}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
