"""gRPC servicer of ossa.orchestrator.v1.OrchestratorService: validate, delegate, publish effects."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import grpc
import redis.asyncio as aioredis

from orchestrator_svc import convert, requests, telemetry, traces
from orchestrator_svc.access import require_lease_holder
from orchestrator_svc.engine import ExecutionEngine, Outcome
from orchestrator_svc.events import EventHub
from orchestrator_svc.leases import LeaseStore
from orchestrator_svc.mirror import QueueMirror
from orchestrator_svc.work import Worker, WorkSession, check_slots
from orchestrator_svc.workflows import WorkflowStore
from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa.orchestrator.v1 import orchestrator_pb2_grpc
from ossa.registry.v1 import registry_pb2, registry_pb2_grpc
from ossa_runtime import logging as ossa_logging
from ossa_runtime import tracing, validate
from ossa_runtime.auth.principal import require_agent
from ossa_runtime.errors import InvalidArgument, NotFound, Unavailable
from ossa_runtime.http import ACCEPTED, CREATED, set_http_status

log = logging.getLogger("ossa.orchestrator")
Context = grpc.aio.ServicerContext[Any, Any]


class Effects:
    """After a commit: record the metrics, mirror the change into Redis, wake lease streams, revoke leases."""

    def __init__(self, mirror: QueueMirror, hub: EventHub, pool: asyncpg.Pool) -> None:
        self.mirror = mirror
        self.hub = hub
        self.pool = pool
        # Told of every committed change: the router (new capability_query tasks) and the console's
        # series (monitor_feed.py).
        self.observers: list[Callable[[Outcome], None]] = []

    async def apply(self, outcome: Outcome, ended: tuple[str, str] | None = None) -> None:
        telemetry.record(outcome)
        for observe in self.observers:
            observe(outcome)
        await traces.record(self.pool, outcome)
        if ended is not None:
            await self.mirror.ended(*ended)
        if outcome.released is not None:
            if outcome.released.will_retry:
                await self.mirror.requeued(outcome.released.task_id)
            else:
                await self.mirror.ended(outcome.released.task_id, "failed")
        for revoked in outcome.revoked:
            await self.mirror.ended(revoked.task_id, "failed")
        if outcome.created:
            await self.mirror.queued(outcome.created)
        if outcome.execution is not None:
            await self.mirror.execution(outcome.execution)
        await self.hub.revoke(outcome.revoked)
        # Wake only the streams that can use this: queued tasks' capabilities, and freed slots.
        await self.hub.ready({r["capability"] for r in outcome.created} | {e.capability for e in outcome.ended})


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    def __init__(
        self, workflows: WorkflowStore, engine: ExecutionEngine, leases: LeaseStore, effects: Effects,
        redis: aioredis.Redis, registry: registry_pb2_grpc.AgentRegistryServiceStub, poll_seconds: float,
        quarantine: float,
    ) -> None:  # fmt: skip
        self.workflows = workflows
        self.engine = engine
        self.leases = leases
        self.effects = effects
        self.redis = redis
        self.registry = registry
        self.poll_seconds = poll_seconds
        self.quarantine = quarantine

    # Workflows ---------------------------------------------------------------------------------

    async def CreateWorkflow(self, request: pb.CreateWorkflowRequest, context: Context) -> pb.CreateWorkflowResponse:
        new = requests.parse_new_workflow(request)
        row = await self.workflows.create(new.name, new.version, new.description, new.definition)
        await set_http_status(context, CREATED)
        return pb.CreateWorkflowResponse(workflow=convert.workflow(row))

    async def ListWorkflows(self, request: pb.ListWorkflowsRequest, context: Context) -> pb.ListWorkflowsResponse:
        status = requests.parse_status(request.status, requests.WORKFLOW_STATUS)
        limit, offset = requests.parse_page(request)
        rows = await self.workflows.query(status, requests.parse_name_filter(request.name), limit, offset)
        return pb.ListWorkflowsResponse(workflows=[convert.workflow(r) for r in rows])

    async def GetWorkflow(self, request: pb.GetWorkflowRequest, context: Context) -> pb.GetWorkflowResponse:
        row = await self.workflows.get(validate.parse_uuid(request.workflow_id, "workflow_id"))
        return pb.GetWorkflowResponse(workflow=convert.workflow(row))

    async def PublishWorkflow(self, request: pb.PublishWorkflowRequest, context: Context) -> pb.PublishWorkflowResponse:
        row = await self.workflows.set_status(validate.parse_uuid(request.workflow_id, "workflow_id"), "published")
        return pb.PublishWorkflowResponse(workflow=convert.workflow(row))

    async def DeprecateWorkflow(
        self, request: pb.DeprecateWorkflowRequest, context: Context
    ) -> pb.DeprecateWorkflowResponse:
        row = await self.workflows.set_status(validate.parse_uuid(request.workflow_id, "workflow_id"), "deprecated")
        return pb.DeprecateWorkflowResponse(workflow=convert.workflow(row))

    # Executions --------------------------------------------------------------------------------

    async def StartExecution(self, request: pb.StartExecutionRequest, context: Context) -> pb.StartExecutionResponse:
        start = requests.parse_start(request)
        if start.workflow_id is not None:
            workflow = await self.workflows.get(start.workflow_id)
        else:
            assert start.name is not None and start.version is not None
            workflow = await self.workflows.find(start.name, start.version)
        execution, tasks, created = await self.engine.start(
            workflow, start.context, start.priority, start.idempotency_key, tracing.current_ids()
        )
        if created:
            definition = self.workflows.definition(workflow["id"], workflow["definition"])
            await self.effects.mirror.execution(execution, [s.id for s in definition.steps])
            await self.effects.apply(Outcome(created=tasks))
            log.info("execution started", extra={"metadata": {"execution_id": execution["id"]}})
        await set_http_status(context, ACCEPTED)
        reply = pb.StartExecutionResponse(
            execution_id=execution["id"], workflow_id=execution["workflow_id"], status=execution["status"]
        )
        reply.started_at.CopyFrom(convert.timestamp(execution["started_at"]))
        return reply

    async def GetExecution(self, request: pb.GetExecutionRequest, context: Context) -> pb.GetExecutionResponse:
        row = await self.engine.get(validate.parse_uuid(request.execution_id, "execution_id"))
        return pb.GetExecutionResponse(execution=convert.execution(row))

    async def ListExecutions(self, request: pb.ListExecutionsRequest, context: Context) -> pb.ListExecutionsResponse:
        workflow_id = validate.parse_uuid(request.workflow_id, "workflow_id") if request.workflow_id else None
        status = requests.parse_status(request.status, requests.EXECUTION_STATUS)
        limit, offset = requests.parse_page(request)
        rows = await self.engine.query(workflow_id, status, limit, offset)
        return pb.ListExecutionsResponse(executions=[convert.execution(r) for r in rows])

    async def CancelExecution(self, request: pb.CancelExecutionRequest, context: Context) -> pb.CancelExecutionResponse:
        outcome = await self.engine.cancel(validate.parse_uuid(request.execution_id, "execution_id"))
        await self.effects.apply(outcome)
        return pb.CancelExecutionResponse(execution=convert.execution(outcome.execution))

    async def ListExecutionTasks(
        self, request: pb.ListExecutionTasksRequest, context: Context
    ) -> pb.ListExecutionTasksResponse:
        rows = await self.engine.tasks(validate.parse_uuid(request.execution_id, "execution_id"))
        return pb.ListExecutionTasksResponse(tasks=[convert.task(r) for r in rows])

    async def GetTask(self, request: pb.GetTaskRequest, context: Context) -> pb.GetTaskResponse:
        row, attempts = await self.engine.task(validate.parse_uuid(request.task_id, "task_id"))
        return pb.GetTaskResponse(task=convert.task(row, attempts))

    # Leases ------------------------------------------------------------------------------------

    async def _worker(self, first: pb.WorkRequest) -> Worker:
        agent_id = validate.parse_uuid(first.agent_id, "agent_id")
        slots = check_slots(first.slots)
        try:
            agent = (await self.registry.GetAgent(registry_pb2.GetAgentRequest(agent_id=agent_id))).agent
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound(f"agent {agent_id} is not registered") from None
            raise Unavailable(f"the registry could not be asked about agent {agent_id}: {err.details()}") from None
        require_agent(agent_id, agent.name)  # an agent token leases only as itself
        capabilities = list(first.capabilities) or list(agent.capabilities)
        if not capabilities:
            raise InvalidArgument("capabilities", "the agent has no capabilities to serve")
        return Worker(agent_id, registry_pb2.AgentType.Value.Name(agent.type), capabilities, slots)

    async def Work(
        self, request_iterator: AsyncIterator[pb.WorkRequest], context: Context
    ) -> AsyncIterator[pb.WorkResponse]:
        first = await anext(aiter(request_iterator), None)
        if first is None:
            return
        worker = await self._worker(first)
        ossa_logging.annotate(agent_id=worker.agent_id)
        log.info("agent connected", extra={"metadata": {"agent_id": worker.agent_id, "slots": worker.slots}})
        session = WorkSession(
            worker, self.leases, self.effects.mirror, self.effects.hub, self.redis, self.poll_seconds, self.quarantine
        )
        async for response in session.run(request_iterator):
            yield response

    async def RenewLease(self, request: pb.RenewLeaseRequest, context: Context) -> pb.RenewLeaseResponse:
        task_id, token = requests.parse_token(request)
        await require_lease_holder(self.leases.pool, task_id, token)
        expires = await self.leases.renew(task_id, token)
        reply = pb.RenewLeaseResponse()
        reply.lease_expires_at.CopyFrom(convert.timestamp(expires))
        return reply

    async def CompleteTask(self, request: pb.CompleteTaskRequest, context: Context) -> pb.CompleteTaskResponse:
        task_id, token = requests.parse_token(request)
        await require_lease_holder(self.leases.pool, task_id, token)
        outcome = await self.engine.complete(task_id, token, requests.parse_output(request))
        await self.effects.apply(outcome, ended=(task_id, "completed"))
        assert outcome.execution is not None
        return pb.CompleteTaskResponse(execution_status=outcome.execution["status"])

    async def FailTask(self, request: pb.FailTaskRequest, context: Context) -> pb.FailTaskResponse:
        task_id, token = requests.parse_token(request)
        await require_lease_holder(self.leases.pool, task_id, token)
        outcome = await self.engine.fail(task_id, token, requests.parse_error(request), request.retryable)
        await self.effects.apply(outcome)
        return pb.FailTaskResponse(will_retry=bool(outcome.released and outcome.released.will_retry))
