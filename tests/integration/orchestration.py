"""Helpers for orchestrator integration tests: real registry + orchestrator(s) on loopback."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from google.protobuf import json_format, struct_pb2

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa.orchestrator.v1 import orchestrator_pb2_grpc
from ossa.registry.v1 import registry_pb2 as rpb
from ossa.registry.v1 import registry_pb2_grpc
from ossa_runtime.settings import Settings
from ossa_sdk import Agent
from tests import auth


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


def to_dict(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return out


def step(step_id: str, capability: str = "echo", **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "capability": capability, **fields}


class Client:
    def __init__(self, orchestrator: str, registry: str, bearer: str | None = None) -> None:
        self.channels = [auth.channel(orchestrator, bearer), auth.channel(registry, bearer)]  # default: admin
        self.orch = orchestrator_pb2_grpc.OrchestratorServiceStub(self.channels[0])
        self.registry = registry_pb2_grpc.AgentRegistryServiceStub(self.channels[1])

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close(None)

    async def published(self, steps: list[dict[str, Any]], name: str | None = None) -> pb.Workflow:
        created = await self.orch.CreateWorkflow(
            pb.CreateWorkflowRequest(
                name=name or f"wf-{secrets.token_hex(4)}", version="1.0.0", definition=struct({"steps": steps})
            )
        )
        reply = await self.orch.PublishWorkflow(pb.PublishWorkflowRequest(workflow_id=created.workflow.id))
        return reply.workflow

    async def start(self, workflow_id: str, **fields: Any) -> str:
        context = fields.pop("context", {})
        reply = await self.orch.StartExecution(
            pb.StartExecutionRequest(workflow_id=workflow_id, context=struct(context), **fields)
        )
        return reply.execution_id

    async def execution(self, execution_id: str) -> pb.Execution:
        return (await self.orch.GetExecution(pb.GetExecutionRequest(execution_id=execution_id))).execution

    async def wait_status(self, execution_id: str, *statuses: str, seconds: float = 15.0) -> pb.Execution:
        wanted = {pb.ExecutionStatus.Value.Value(s) for s in statuses}
        for _ in range(int(seconds / 0.05)):
            execution = await self.execution(execution_id)
            if execution.status in wanted:
                return execution
            await asyncio.sleep(0.05)
        raise AssertionError(f"execution {execution_id} stayed {execution.status}")

    async def agent(self, capabilities: list[str], agent_type: int = rpb.AgentType.worker) -> str:
        reply = await self.registry.CreateAgent(
            rpb.CreateAgentRequest(
                name=f"agent-{secrets.token_hex(4)}", type=agent_type, version="1.0.0", capabilities=capabilities
            )
        )
        return reply.agent.id

    @asynccontextmanager
    async def work(self, agent_id: str, slots: int = 1) -> AsyncIterator[Stream]:
        call = self.orch.Work()
        await call.write(pb.WorkRequest(agent_id=agent_id, slots=slots))
        stream = Stream(call)
        try:
            yield stream
        finally:
            call.cancel()
            await asyncio.gather(stream.reader, return_exceptions=True)

    async def complete(self, assignment: pb.Assignment, output: dict[str, Any]) -> pb.CompleteTaskResponse:
        return await self.orch.CompleteTask(
            pb.CompleteTaskRequest(
                task_id=assignment.task_id, fencing_token=assignment.fencing_token, output=struct(output)
            )
        )


class Stream:
    """Reads the Work stream in the background (cancelling a pending read would cancel the call)."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.call:
                self.inbox.put_nowait(message)
        except BaseException as err:  # surfaced by next()
            self.inbox.put_nowait(err)

    async def next(self, seconds: float = 10.0) -> pb.WorkResponse:
        message = await asyncio.wait_for(self.inbox.get(), seconds)
        if isinstance(message, BaseException):
            raise message
        assert isinstance(message, pb.WorkResponse), message
        return message

    async def assignment(self, seconds: float = 10.0) -> pb.Assignment:
        message = await self.next(seconds)
        assert message.WhichOneof("kind") == "assignment", message
        return message.assignment


def fast(settings: Settings, registry_port: int) -> Settings:
    return settings.replace(
        registry_port=registry_port,
        dispatch_poll_seconds=0.05,
        lease_sweep_seconds=0.1,
        retry_backoff_seconds=0.05,
        retry_backoff_max_seconds=0.2,
    )


@asynccontextmanager
async def serving(settings: Settings, agents: Callable[[dict[str, Any]], list[Agent]]) -> AsyncIterator[Client]:
    """A real registry and orchestrator on loopback with SDK agents: `agents(common)` builds them from
    the keyword arguments every test agent shares (addresses, admin token, fast heartbeats)."""
    from orchestrator_svc.server import build_server as build_orchestrator
    from registry_svc.server import build_server as build_registry

    registry, registry_port = await build_registry(settings, port=0)
    await registry.start()
    orchestrator, port = await build_orchestrator(fast(settings, registry_port), port=0)
    await orchestrator.start()
    common = {"registry": f"127.0.0.1:{registry_port}", "orchestrator": f"127.0.0.1:{port}",
              "heartbeat_interval": 0.2, "grace_seconds": 1.0, "token": auth.ADMIN_TOKEN}  # fmt: skip
    running = agents(common)
    served = [asyncio.create_task(a.serve()) for a in running]
    client = Client(f"127.0.0.1:{port}", f"127.0.0.1:{registry_port}")
    try:
        yield client
    finally:
        for agent in running:
            agent.stop()
        await asyncio.gather(*served, return_exceptions=True)
        await client.close()
        await orchestrator.stop()
        await registry.stop()


async def tasks_by_name(client: Client, execution_id: str) -> dict[str, pb.Task]:
    reply = await client.orch.ListExecutionTasks(pb.ListExecutionTasksRequest(execution_id=execution_id))
    return {t.name: t for t in reply.tasks}
