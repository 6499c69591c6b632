"""The SDK's Agent against the real registry and a fake orchestrator (a real gRPC server on loopback).

The fake implements the lease half of OrchestratorService in memory: Work streams whose
assignments and cancellations the test pushes, and RenewLease/CompleteTask/FailTask checking
fencing tokens (a stale token is FAILED_PRECONDITION, as in the real service).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf import json_format

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa.orchestrator.v1 import orchestrator_pb2_grpc
from ossa.registry.v1 import registry_pb2 as reg
from ossa.registry.v1 import registry_pb2_grpc
from ossa_cli.ports import free_port
from ossa_runtime import keys
from ossa_runtime.server import ServiceHost
from ossa_runtime.settings import Settings
from ossa_sdk import Agent, PermanentError
from ossa_sdk.handlers import echo
from registry_svc.server import build_server
from tests import auth

pytestmark = pytest.mark.integration
Context = grpc.aio.ServicerContext[Any, Any]


async def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


# The fake orchestrator ---------------------------------------------------------------------------------


@dataclass
class Stream:
    requests: list[pb.WorkRequest] = field(default_factory=list)
    outbox: asyncio.Queue[pb.WorkResponse | None] = field(default_factory=asyncio.Queue)
    open: bool = True


class FakeOrchestrator(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    def __init__(self) -> None:
        self.streams: list[Stream] = []
        self.leases: dict[str, int] = {}  # task id -> the valid fencing token
        self.renewals: dict[str, int] = defaultdict(int)
        self.completed: dict[str, dict[str, Any]] = {}
        self.failed: dict[str, tuple[str, bool]] = {}
        self.rejected: list[tuple[str, str]] = []  # (rpc, task id) refused for a stale token
        self._tokens = itertools.count(100)

    @property
    def open_streams(self) -> list[Stream]:
        return [s for s in self.streams if s.open and s.requests]

    def stream_of(self, agent_id: str | None) -> Stream | None:
        """The open Work stream of this agent, if any."""
        mine = [s for s in self.open_streams if agent_id and s.requests[0].agent_id == agent_id]
        return mine[-1] if mine else None

    async def Work(self, request_iterator: Any, context: Context) -> AsyncIterator[pb.WorkResponse]:
        stream = Stream()
        self.streams.append(stream)

        async def read() -> None:
            async for request in request_iterator:
                stream.requests.append(request)

        reader = asyncio.create_task(read())
        try:
            while (message := await stream.outbox.get()) is not None:
                yield message
        finally:
            stream.open = False
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    def assign(self, params: dict[str, Any] | None = None, *, lease_seconds: int = 30, timeout_seconds: int = 0) -> str:
        task_id = f"task-{secrets.token_hex(4)}"
        token = next(self._tokens)
        self.leases[task_id] = token
        assignment = pb.Assignment(
            task_id=task_id,
            execution_id="exec-1",
            step_id="step-1",
            capability="summarize",
            fencing_token=token,
            lease_seconds=lease_seconds,
            timeout_seconds=timeout_seconds,
            attempt=1,
        )
        assignment.input.update({"params": params or {}, "context": {"run": "r1"}, "upstream": {}})
        self.open_streams[-1].outbox.put_nowait(pb.WorkResponse(assignment=assignment))
        return task_id

    def cancel(self, task_id: str) -> None:
        token = self.leases.pop(task_id)
        cancellation = pb.Cancellation(task_id=task_id, fencing_token=token, reason="execution cancelled")
        self.open_streams[-1].outbox.put_nowait(pb.WorkResponse(cancellation=cancellation))

    async def _check(self, rpc: str, task_id: str, token: int, context: Context, end: bool) -> None:
        if self.leases.get(task_id) != token:
            self.rejected.append((rpc, task_id))
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"stale fencing token {token}")
        if end:
            del self.leases[task_id]

    async def RenewLease(self, request: pb.RenewLeaseRequest, context: Context) -> pb.RenewLeaseResponse:
        await self._check("RenewLease", request.task_id, request.fencing_token, context, end=False)
        self.renewals[request.task_id] += 1
        return pb.RenewLeaseResponse()

    async def CompleteTask(self, request: pb.CompleteTaskRequest, context: Context) -> pb.CompleteTaskResponse:
        await self._check("CompleteTask", request.task_id, request.fencing_token, context, end=True)
        self.completed[request.task_id] = json_format.MessageToDict(request.output)
        return pb.CompleteTaskResponse(execution_status=pb.ExecutionStatus.completed)

    async def FailTask(self, request: pb.FailTaskRequest, context: Context) -> pb.FailTaskResponse:
        await self._check("FailTask", request.task_id, request.fencing_token, context, end=True)
        self.failed[request.task_id] = (request.error, request.retryable)
        return pb.FailTaskResponse(will_retry=request.retryable)


class FakeServer:
    """The fake on a real grpc.aio server; stop() and start() again keep the port and the state."""

    def __init__(self) -> None:
        self.fake = FakeOrchestrator()
        self.port = 0
        self._server: grpc.aio.Server | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        server = grpc.aio.server()
        orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(self.fake, server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=None)
            self._server = None


# Fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def registry(settings: Settings) -> AsyncIterator[str]:
    host, port = await build_server(settings.replace(heartbeat_interval_seconds=1), port=0)
    await host.start()
    yield f"127.0.0.1:{port}"
    await host.stop()


@pytest.fixture
async def orchestrator() -> AsyncIterator[FakeServer]:
    server = FakeServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def registry_stub(registry: str) -> AsyncIterator[Any]:
    async with auth.channel(registry) as channel:
        yield registry_pb2_grpc.AgentRegistryServiceStub(channel)


def make_agent(registry: str, orchestrator: FakeServer, handler: Any = "echo", **options: Any) -> Agent:
    options.setdefault("heartbeat_interval", 0.1)
    options.setdefault("grace_seconds", 2.0)
    options.setdefault("token", auth.ADMIN_TOKEN)
    return Agent(
        f"sdk-{secrets.token_hex(4)}",
        capabilities=["summarize"],
        handler=handler,
        registry=registry,
        orchestrator=orchestrator.target,
        **options,
    )


@asynccontextmanager
async def serving(agent: Agent, orchestrator: FakeServer | None = None) -> AsyncIterator[Agent]:
    """Serve the agent in the background (until its Work stream is open, given the fake); stop it after."""
    task = asyncio.create_task(agent.serve())
    try:
        if orchestrator is not None:
            await eventually(lambda: orchestrator.fake.stream_of(agent.id) or task.done(), what="the Work stream")
            if task.done():
                task.result()
        yield agent
    finally:
        agent.stop()
        await asyncio.wait_for(task, 30)


class Gate:
    """A handler that records how it ran and waits until released (or cancelled)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started: list[dict[str, Any]] = []
        self.cancelled = 0
        self.active = 0
        self.max_active = 0

    async def __call__(self, task_input: dict[str, Any]) -> dict[str, Any]:
        self.started.append(task_input)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.active -= 1
        return {"done": task_input["params"].get("n", 0)}


# Tests ---------------------------------------------------------------------------------------------------


async def test_registers_streams_work_and_completes(
    registry: str, orchestrator: FakeServer, registry_stub: Any
) -> None:
    agent = make_agent(registry, orchestrator, slots=3, version="2.0.0", metadata={"owner": "tests"})
    async with serving(agent, orchestrator):
        first = orchestrator.fake.open_streams[0].requests[0]
        assert (first.agent_id, list(first.capabilities), first.slots) == (agent.id, ["summarize"], 3)
        stored = (await registry_stub.GetAgent(reg.GetAgentRequest(agent_id=agent.id))).agent
        assert (stored.name, stored.version, stored.type) == (agent.name, "2.0.0", reg.AgentType.worker)
        assert dict(stored.metadata) == {"owner": "tests"}
        task_id = orchestrator.fake.assign({"text": "hello", "n": 2})
        output = await eventually(lambda: orchestrator.fake.completed.get(task_id), what="CompleteTask")
    assert output == {"params": {"text": "hello", "n": 2}, "context": {"run": "r1"}, "upstream": {}}
    assert orchestrator.fake.failed == {} and orchestrator.fake.rejected == []


async def test_sync_handler_runs_in_a_thread_and_its_value_is_wrapped(registry: str, orchestrator: FakeServer) -> None:
    threads: list[int] = []

    def shout(task_input: dict[str, Any]) -> str:
        threads.append(threading.get_ident())
        return str(task_input["params"]["text"]).upper()

    agent = make_agent(registry, orchestrator, handler=shout)
    async with serving(agent, orchestrator):
        task_id = orchestrator.fake.assign({"text": "hi"})
        output = await eventually(lambda: orchestrator.fake.completed.get(task_id), what="CompleteTask")
    assert output == {"result": "HI"}
    assert threads and threads[0] != threading.get_ident()


async def test_a_restarted_agent_keeps_its_id(registry: str, orchestrator: FakeServer, registry_stub: Any) -> None:
    first = make_agent(registry, orchestrator)
    async with serving(first, orchestrator):
        pass
    again = Agent(
        first.name,
        capabilities=["summarize"],
        handler=echo,
        registry=registry,
        gateway=orchestrator.target,
        token=auth.ADMIN_TOKEN,
    )
    async with serving(again, orchestrator):
        assert again.id == first.id
        assert orchestrator.fake.open_streams[-1].requests[0].agent_id == first.id
    same = (await registry_stub.ListAgents(reg.ListAgentsRequest(name=first.name))).agents
    assert [a.id for a in same] == [first.id]


async def test_the_lease_is_renewed_and_heartbeats_report_busy(
    registry: str, orchestrator: FakeServer, settings: Settings
) -> None:
    gate = Gate()
    agent = make_agent(registry, orchestrator, handler=gate, slots=1)
    redis = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        async with serving(agent, orchestrator):
            assert agent.id is not None
            status_key = keys.agent_status(agent.id)
            task_id = orchestrator.fake.assign({"n": 1}, lease_seconds=1)
            await eventually(lambda: gate.started, what="the handler")
            await eventually(lambda: orchestrator.fake.renewals[task_id] >= 2, timeout=15, what="2 renewals")
            assert await redis.get(status_key) == "busy"
            assert await redis.hget(keys.agent_info(agent.id), "load") in {"1", "1.0"}
            gate.release.set()
            await eventually(lambda: task_id in orchestrator.fake.completed, what="CompleteTask")
            for _ in range(200):
                if await redis.get(status_key) == "idle":
                    break
                await asyncio.sleep(0.01)
            assert await redis.get(status_key) == "idle"
    finally:
        await redis.aclose()
    assert orchestrator.fake.completed[task_id] == {"done": 1}


async def test_a_lost_lease_stops_the_handler_without_reporting(registry: str, orchestrator: FakeServer) -> None:
    gate = Gate()
    async with serving(make_agent(registry, orchestrator, handler=gate), orchestrator):
        task_id = orchestrator.fake.assign(lease_seconds=1)
        await eventually(lambda: gate.started, what="the handler")
        del orchestrator.fake.leases[task_id]  # the lease expired on the server
        await eventually(lambda: gate.cancelled, timeout=15, what="the handler to be cancelled")
        await asyncio.sleep(0.1)
    assert orchestrator.fake.rejected == [("RenewLease", task_id)]
    assert task_id not in orchestrator.fake.completed and task_id not in orchestrator.fake.failed


async def test_a_cancellation_stops_the_handler(registry: str, orchestrator: FakeServer) -> None:
    gate = Gate()
    agent = make_agent(registry, orchestrator, handler=gate)
    async with serving(agent, orchestrator):
        task_id = orchestrator.fake.assign()
        await eventually(lambda: gate.started, what="the handler")
        orchestrator.fake.cancel(task_id)
        await eventually(lambda: gate.cancelled, what="the handler to be cancelled")
        await eventually(lambda: agent.running == 0, what="the slot to be free")
    assert orchestrator.fake.completed == {} and orchestrator.fake.failed == {} and orchestrator.fake.rejected == []


async def test_a_failing_handler_reports_a_retryable_failure(registry: str, orchestrator: FakeServer) -> None:
    async with serving(make_agent(registry, orchestrator, handler="fail"), orchestrator):
        task_id = orchestrator.fake.assign({"message": "model overloaded"})
        failure = await eventually(lambda: orchestrator.fake.failed.get(task_id), what="FailTask")
    assert failure == ("RuntimeError: model overloaded", True)


async def test_permanent_error_is_not_retryable(registry: str, orchestrator: FakeServer) -> None:
    def reject(task_input: dict[str, Any]) -> dict[str, Any]:
        raise PermanentError("input is not a document")

    async with serving(make_agent(registry, orchestrator, handler=reject), orchestrator):
        task_id = orchestrator.fake.assign()
        failure = await eventually(lambda: orchestrator.fake.failed.get(task_id), what="FailTask")
    assert failure == ("PermanentError: input is not a document", False)


async def test_a_handler_over_its_timeout_fails_retryable(registry: str, orchestrator: FakeServer) -> None:
    gate = Gate()
    async with serving(make_agent(registry, orchestrator, handler=gate), orchestrator):
        task_id = orchestrator.fake.assign(timeout_seconds=1)
        failure = await eventually(lambda: orchestrator.fake.failed.get(task_id), timeout=15, what="FailTask")
    assert failure == ("TimeoutError: handler exceeded timeout_seconds=1", True)
    assert gate.cancelled == 1


async def test_no_more_handlers_than_slots(registry: str, orchestrator: FakeServer) -> None:
    gate = Gate()
    agent = make_agent(registry, orchestrator, handler=gate, slots=2)
    async with serving(agent, orchestrator):
        tasks = [orchestrator.fake.assign({"n": n}) for n in range(5)]  # more than the slots
        await eventually(lambda: len(gate.started) == 2, what="two handlers")
        await asyncio.sleep(0.1)
        assert (len(gate.started), agent.running) == (2, 2)
        await agent.set_slots(3)
        await eventually(lambda: len(gate.started) == 3, what="a third handler")
        await eventually(lambda: orchestrator.fake.open_streams[-1].requests[-1].slots == 3, what="slots=3 announced")
        gate.release.set()
        await eventually(lambda: len(orchestrator.fake.completed) == 5, what="every task")
    assert gate.max_active == 3
    assert [orchestrator.fake.completed[t] for t in tasks] == [{"done": n} for n in range(5)]


async def test_reconnects_after_the_orchestrator_restarts(registry: str, orchestrator: FakeServer) -> None:
    agent = make_agent(registry, orchestrator)
    async with serving(agent, orchestrator):
        await orchestrator.stop()
        await eventually(lambda: not orchestrator.fake.open_streams, what="the stream to end")
        await asyncio.sleep(0.3)  # the agent retries while nothing listens
        await orchestrator.start()
        await eventually(lambda: len(orchestrator.fake.open_streams) == 1, timeout=24, what="a new Work stream")
        assert [s.requests[0].agent_id for s in orchestrator.fake.streams if s.requests] == [agent.id, agent.id]
        task_id = orchestrator.fake.assign({"n": 7})
        await eventually(lambda: task_id in orchestrator.fake.completed, what="CompleteTask")


async def test_a_rejected_result_is_logged_not_retried(
    registry: str, orchestrator: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    gate = Gate()
    async with serving(make_agent(registry, orchestrator, handler=gate), orchestrator):
        task_id = orchestrator.fake.assign()
        await eventually(lambda: gate.started, what="the handler")
        orchestrator.fake.leases[task_id] += 1  # the task was leased again elsewhere
        with caplog.at_level(logging.WARNING, logger="ossa.sdk"):
            gate.release.set()
            await eventually(lambda: orchestrator.fake.rejected, what="CompleteTask")
            await asyncio.sleep(0.3)
    assert orchestrator.fake.rejected == [("CompleteTask", task_id)]
    assert any("rejected" in r.getMessage() and task_id in r.getMessage() for r in caplog.records)


async def test_stop_waits_for_running_handlers(registry: str, orchestrator: FakeServer) -> None:
    gate = Gate()
    agent = make_agent(registry, orchestrator, handler=gate)
    task = asyncio.create_task(agent.serve())
    await eventually(lambda: orchestrator.fake.open_streams, what="the Work stream")
    task_id = orchestrator.fake.assign({"n": 3})
    await eventually(lambda: gate.started, what="the handler")
    agent.stop()
    agent.stop()  # idempotent
    await eventually(lambda: not orchestrator.fake.open_streams, what="the Work stream to close")
    assert not task.done()
    gate.release.set()
    await asyncio.wait_for(task, 30)
    assert orchestrator.fake.completed[task_id] == {"done": 3}


async def test_stop_after_the_grace_period_fails_running_tasks(registry: str, orchestrator: FakeServer) -> None:
    gate = Gate()
    agent = make_agent(registry, orchestrator, handler=gate, grace_seconds=0.2)
    task = asyncio.create_task(agent.serve())
    await eventually(lambda: orchestrator.fake.open_streams, what="the Work stream")
    task_id = orchestrator.fake.assign()
    await eventually(lambda: gate.started, what="the handler")
    agent.stop()
    await asyncio.wait_for(task, 30)
    error, retryable = orchestrator.fake.failed[task_id]
    assert retryable and "agent stopped" in error and gate.cancelled == 1


async def test_registration_waits_for_the_registry(orchestrator: FakeServer, settings: Settings) -> None:
    port = free_port()
    agent = make_agent(f"127.0.0.1:{port}", orchestrator)
    async with serving(agent):
        await asyncio.sleep(0.3)  # nothing listens yet: the agent keeps retrying
        assert agent.id is None
        host: ServiceHost
        host, _ = await build_server(settings, port=port)
        await host.start()
        try:
            await eventually(lambda: orchestrator.fake.open_streams, timeout=24, what="the Work stream")
            assert orchestrator.fake.open_streams[0].requests[0].agent_id == agent.id
        finally:
            agent.stop()
            await asyncio.sleep(0)
            await eventually(lambda: not orchestrator.fake.open_streams, what="the agent to stop")
            await host.stop()


async def test_a_deleted_agent_registers_again(registry: str, orchestrator: FakeServer, registry_stub: Any) -> None:
    agent = make_agent(registry, orchestrator)
    async with serving(agent, orchestrator):
        old = agent.id
        await registry_stub.DeleteAgent(reg.DeleteAgentRequest(agent_id=old))
        await eventually(lambda: agent.id != old, what="a new registration")
        await eventually(
            lambda: [s for s in orchestrator.fake.open_streams if s.requests[0].agent_id == agent.id],
            timeout=6,
            what="a Work stream with the new id",
        )
        stored = (await registry_stub.GetAgent(reg.GetAgentRequest(agent_id=agent.id))).agent
        assert stored.name == agent.name
