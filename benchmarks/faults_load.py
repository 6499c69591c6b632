"""The fault suite's workload: its workflows, and a steady stream of executions started through Envoy.

Five workflows per scenario (fresh ones, so each scenario's executions are counted apart), all run
by `benchmarks.faults_handler:handle` agents:

    one      1 step                                   max_retries 3
    dag5     5 steps: a -> (b, c) -> d -> e           max_retries 3
    flaky1   1 step whose first attempt fails         max_retries 3
    flaky5   dag5 with step c flaky                   max_retries 3
    doomed   1 step that always fails                 max_retries 0   (the intended failures)

Every step sleeps `STEP_MS` so agents hold leases when a fault hits, and has a short lease
(`lease_seconds`), so a dead or stopped agent's leases run out within the scenario. Executions are
started in the fixed order of MIX (2.6 tasks per execution) at a steady rate with gRPC
StartExecution through Envoy; each has its own `context.run` (the flaky handler's key). The
client records every start the platform acknowledged and the errors of the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import struct_pb2

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa.orchestrator.v1 import orchestrator_pb2_grpc
from ossa_runtime.auth.client import bearer_interceptors

STEP_MS = 20
CALL = 10.0  # seconds: the deadline of one start call
MIX = ("one", "dag5", "one", "flaky1", "one", "dag5", "one", "flaky5", "dag5", "one",
       "dag5", "one", "flaky1", "one", "dag5", "one", "flaky5", "dag5", "one", "doomed")  # fmt: skip
INTENDED_FAILURES = frozenset({"doomed"})


def tasks_per_execution() -> float:
    sizes = {"one": 1, "dag5": 5, "flaky1": 1, "flaky5": 5, "doomed": 1}
    return sum(sizes[k] for k in MIX) / len(MIX)


def _step(step_id: str, capability: str, lease: int, deps: tuple[str, ...] = (), retries: int = 3,
          **params: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "id": step_id,
        "capability": capability,
        "depends_on": list(deps),
        "input": {"step": step_id, **params},
        "lease_seconds": lease,
        "timeout_seconds": 300,
        "max_retries": retries,
    }


def _dag(capability: str, lease: int, flaky: str = "") -> list[dict[str, Any]]:
    shape = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": ("d",)}
    return [
        _step(s, capability, lease, deps, ms=STEP_MS, **({"flaky": True} if s == flaky else {}))
        for s, deps in shape.items()
    ]


def definitions(capability: str, lease: int) -> dict[str, list[dict[str, Any]]]:
    return {
        "one": [_step("s", capability, lease, ms=STEP_MS)],
        "dag5": _dag(capability, lease),
        "flaky1": [_step("s", capability, lease, ms=STEP_MS, flaky=True)],
        "flaky5": _dag(capability, lease, flaky="c"),
        "doomed": [_step("s", capability, lease, retries=0, doom=True)],
    }


def slow_definition(capability: str, lease: int, ms: int) -> list[dict[str, Any]]:
    """One long step (scenario 5: an agent killed while it holds 16 of these)."""
    return [_step("slow", capability, lease, ms=ms)]


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


def channel(gateway: str, token: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(gateway, interceptors=bearer_interceptors(token))


async def publish(gateway: str, token: str, steps: dict[str, list[dict[str, Any]]], tag: str) -> dict[str, str]:
    """Create and publish one workflow per entry; returns their ids by kind."""
    out: dict[str, str] = {}
    async with channel(gateway, token) as chan:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(chan)
        for kind, definition in steps.items():
            request = pb.CreateWorkflowRequest(
                name=f"faults-{tag}-{kind}-{secrets.token_hex(3)}",
                version="1.0.0",
                definition=_struct({"steps": definition}),
            )
            created = await stub.CreateWorkflow(request, timeout=CALL)
            await stub.PublishWorkflow(pb.PublishWorkflowRequest(workflow_id=created.workflow.id), timeout=CALL)
            out[kind] = str(created.workflow.id)
    return out


async def start_many(gateway: str, token: str, workflow_id: str, n: int) -> list[str]:
    """n executions of one workflow, started at once (StartExecutions); their ids."""
    async with channel(gateway, token) as chan:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(chan)
        items = [pb.StartExecutionRequest(workflow_id=workflow_id, context=_struct({"run": str(uuid.uuid4())}))
                 for _ in range(n)]  # fmt: skip
        reply = await stub.StartExecutions(pb.StartExecutionsRequest(executions=items), timeout=CALL)
        return [str(e.execution_id) for e in reply.executions]


@dataclass
class Load:
    """Starts executions of `workflows` (ids by kind) at `rate` per second, in MIX order, with at
    most `in_flight` calls waiting (a tick with none free is skipped and counted)."""

    gateway: str
    token: str
    workflows: dict[str, str]
    rate: float
    in_flight: int = 64
    started: dict[str, str] = field(default_factory=dict)  # execution id -> kind (acknowledged starts)
    sent: dict[str, float] = field(default_factory=dict)  # execution id -> wall time its start was sent
    errors: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    calls: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="faults-load")

    async def stop(self) -> None:
        """Stop starting; wait for the calls in flight (each ends within CALL seconds)."""
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        calls: set[asyncio.Task[None]] = set()
        async with channel(self.gateway, self.token) as chan:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(chan)
            at, i = loop.time(), 0
            while not self._stop.is_set():
                if len(calls) < self.in_flight:
                    call = asyncio.create_task(self._one(stub, MIX[i % len(MIX)]))
                    calls.add(call)
                    call.add_done_callback(calls.discard)
                else:
                    self.skipped += 1
                i += 1
                at += 1.0 / self.rate
                if (delay := at - loop.time()) > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), delay)
                else:
                    at = loop.time()  # fell behind (a slow machine): do not burst to catch up
            if calls:
                await asyncio.gather(*calls, return_exceptions=True)

    async def _one(self, stub: Any, kind: str) -> None:
        request = pb.StartExecutionRequest(
            workflow_id=self.workflows[kind], context=_struct({"run": str(uuid.uuid4())})
        )
        sent = time.time()
        self.calls += 1
        try:
            reply = await stub.StartExecution(request, timeout=CALL)
        except grpc.aio.AioRpcError as err:
            self.errors[f"{err.code().name}: {(err.details() or '')[:80]}"] += 1
            return
        self.started[str(reply.execution_id)] = kind
        self.sent[str(reply.execution_id)] = sent
