"""gRPC servicer of ossa.orchestrator.v1.OrchestratorService: validate, then delegate (batched transitions)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from orchestrator_svc import convert, validation
from orchestrator_svc.access import require_lease_holder
from orchestrator_svc.approvals import Approvals
from orchestrator_svc.batches import Batches, Completion, Failure, Report, Started, StartItem
from orchestrator_svc.dispatch import Dispatcher
from orchestrator_svc.effects import Effects
from orchestrator_svc.engine import ExecutionEngine
from orchestrator_svc.watch import Watcher
from orchestrator_svc.work import Worker, WorkSession, check_slots
from orchestrator_svc.workflows import WorkflowStore
from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa.orchestrator.v1 import orchestrator_pb2_grpc
from ossa.registry.v1 import registry_pb2, registry_pb2_grpc
from ossa_runtime import logging as ossa_logging
from ossa_runtime import tracing, validate
from ossa_runtime.auth.principal import agent_scoped, current_principal, require_agent
from ossa_runtime.errors import DomainError, FailedPrecondition, FieldViolation, InvalidArgument, NotFound, Unavailable

log = logging.getLogger("ossa.orchestrator")
Context = grpc.aio.ServicerContext[Any, Any]
MAX_BATCH_START = 1000
REASON_MAX = 1000  # characters of an approval decision's reason


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    def __init__(
        self, workflows: WorkflowStore, engine: ExecutionEngine, batches: Batches, effects: Effects,
        dispatcher: Dispatcher, registry: registry_pb2_grpc.AgentRegistryServiceStub,
    ) -> None:  # fmt: skip
        self.workflows = workflows
        self.engine = engine
        self.batches = batches
        self.effects = effects
        self.dispatcher = dispatcher
        self.registry = registry
        self.watcher = Watcher(engine, effects.hub)
        self.approvals = Approvals(engine.pool, workflows)

    # Workflows ---------------------------------------------------------------------------------

    async def CreateWorkflow(self, request: pb.CreateWorkflowRequest, context: Context) -> pb.CreateWorkflowResponse:
        new = validation.parse_new_workflow(request)
        row = await self.workflows.create(new.name, new.version, new.description, new.definition)
        return pb.CreateWorkflowResponse(workflow=convert.workflow(row))

    async def ListWorkflows(self, request: pb.ListWorkflowsRequest, context: Context) -> pb.ListWorkflowsResponse:
        status = validation.parse_status(request.status, validation.WORKFLOW_STATUS)
        limit, offset = validation.parse_page(request)
        rows = await self.workflows.query(status, validation.parse_name_filter(request.name), limit, offset)
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

    async def _start_item(self, start: validation.StartRequest) -> StartItem:
        workflow = await self.workflows.runnable(start.workflow_id, start.name, start.version)
        if workflow["status"] != "published":
            raise FailedPrecondition(f"workflow {workflow['id']} is {workflow['status']}: only published workflows run")
        definition = self.workflows.definition(workflow["id"], workflow["definition"])
        roots = len(definition.roots())
        if start.budget and roots > start.budget.get("max_tasks", roots):
            raise InvalidArgument("budget.max_tasks", f"the workflow starts with {roots} tasks at once")
        return StartItem(workflow["id"], definition, start.context, start.priority, start.idempotency_key,
                         tracing.current_ids(), start.budget)  # fmt: skip

    async def StartExecution(self, request: pb.StartExecutionRequest, context: Context) -> pb.StartExecutionResponse:
        item = await self._start_item(validation.parse_start(request))
        started = await self.batches.starts.submit(item)
        # On the call's access log line ("rpc finished"): one line per start, not two.
        ossa_logging.annotate(execution_id=started.execution["id"], created=started.created)
        return _started(started)

    async def StartExecutions(self, request: pb.StartExecutionsRequest, context: Context) -> pb.StartExecutionsResponse:
        if not 1 <= len(request.executions) <= MAX_BATCH_START:
            count = len(request.executions)
            raise InvalidArgument("executions", f"give 1 to {MAX_BATCH_START} executions, got {count}")
        items = []
        for i, one in enumerate(request.executions):
            try:
                items.append(await self._start_item(validation.parse_start(one)))
            except InvalidArgument as err:
                raise InvalidArgument([FieldViolation(f"executions[{i}].{v.field}", v.description)
                                       for v in err.violations]) from None  # fmt: skip
            except DomainError as err:
                raise type(err)(f"executions[{i}]: {err.message}") from None
        started = await self.batches.start_all(items)
        ossa_logging.annotate(executions_started=sum(s.created for s in started))  # on the access log line
        return pb.StartExecutionsResponse(executions=[_started(s) for s in started])

    async def GetExecution(self, request: pb.GetExecutionRequest, context: Context) -> pb.GetExecutionResponse:
        if request.wait or request.status_not:  # a long poll (orchestrator_svc/watch.py): never cached
            execution = await self.watcher.long_poll(request)
            await context.send_initial_metadata((("cache-control", "no-store"),))
            return pb.GetExecutionResponse(execution=convert.execution(execution))
        row = await self.engine.get(validate.parse_uuid(request.execution_id, "execution_id"))
        return pb.GetExecutionResponse(execution=convert.execution(row))

    async def WatchExecution(
        self, request: pb.WatchExecutionRequest, context: Context
    ) -> AsyncIterator[pb.WatchExecutionResponse]:
        async for message in self.watcher.watch(request):
            yield message

    async def ListExecutions(self, request: pb.ListExecutionsRequest, context: Context) -> pb.ListExecutionsResponse:
        workflow_id = validate.parse_uuid(request.workflow_id, "workflow_id") if request.workflow_id else None
        status = validation.parse_status(request.status, validation.EXECUTION_STATUS)
        limit, offset = validation.parse_page(request)
        rows = await self.engine.query(workflow_id, status, limit, offset)
        return pb.ListExecutionsResponse(executions=[convert.execution(r) for r in rows])

    async def CancelExecution(self, request: pb.CancelExecutionRequest, context: Context) -> pb.CancelExecutionResponse:
        outcome = await self.engine.cancel(validate.parse_uuid(request.execution_id, "execution_id"))
        self.effects.apply(outcome)
        return pb.CancelExecutionResponse(execution=convert.execution(outcome.execution))

    async def ListExecutionTasks(
        self, request: pb.ListExecutionTasksRequest, context: Context
    ) -> pb.ListExecutionTasksResponse:
        rows = await self.engine.tasks(validate.parse_uuid(request.execution_id, "execution_id"))
        return pb.ListExecutionTasksResponse(tasks=[convert.task(r) for r in rows])

    async def GetTask(self, request: pb.GetTaskRequest, context: Context) -> pb.GetTaskResponse:
        row, attempts = await self.engine.task(validate.parse_uuid(request.task_id, "task_id"))
        return pb.GetTaskResponse(task=convert.task(row, attempts))

    async def _decide(self, task_id: str, reason: str, approved: bool) -> Any:
        task_id = validate.parse_uuid(task_id, "task_id")
        problems: list[FieldViolation] = []
        validate.optional_text(reason, "reason", REASON_MAX, problems)  # no NUL: the decision is JSONB
        if problems:
            raise InvalidArgument(problems)
        principal = current_principal()
        who = principal.sub if principal is not None else "anonymous"
        row, outcome = await self.approvals.decide(task_id, approved, who, reason)
        self.effects.apply(outcome)
        return convert.task(row)

    async def ApproveTask(self, request: pb.ApproveTaskRequest, context: Context) -> pb.ApproveTaskResponse:
        return pb.ApproveTaskResponse(task=await self._decide(request.task_id, request.reason, True))

    async def RejectTask(self, request: pb.RejectTaskRequest, context: Context) -> pb.RejectTaskResponse:
        return pb.RejectTaskResponse(task=await self._decide(request.task_id, request.reason, False))

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
        agent_type = registry_pb2.AgentType.Value.Name(agent.type)
        return Worker(agent_id, agent_type, capabilities, slots, first.batched, agent_scoped(current_principal()))

    async def Work(
        self, request_iterator: AsyncIterator[pb.WorkRequest], context: Context
    ) -> AsyncIterator[pb.WorkResponse]:
        first = await anext(aiter(request_iterator), None)
        if first is None:
            return
        worker = await self._worker(first)
        ossa_logging.annotate(agent_id=worker.agent_id)
        log.info("agent connected", extra={"metadata": {"agent_id": worker.agent_id, "slots": worker.slots}})
        session = WorkSession(worker, self.dispatcher, self.batches, self.effects.hub)
        async for response in session.run(request_iterator):
            yield response

    async def RenewLease(self, request: pb.RenewLeaseRequest, context: Context) -> pb.RenewLeaseResponse:
        task_id, token = validation.parse_token(request)
        await require_lease_holder(self.engine.pool, task_id, token)
        expires, _ = await self.batches.renewals.submit(Report(task_id, token))
        reply = pb.RenewLeaseResponse()
        reply.lease_expires_at.CopyFrom(convert.timestamp(expires))
        return reply

    async def CompleteTask(self, request: pb.CompleteTaskRequest, context: Context) -> pb.CompleteTaskResponse:
        task_id, token = validation.parse_token(request)
        await require_lease_holder(self.engine.pool, task_id, token)
        output, cost = validation.parse_output(request), validation.parse_cost(request)
        done = await self.batches.completions.submit(Completion(task_id, token, output, cost=cost))
        return pb.CompleteTaskResponse(execution_status=done.execution_status)  # type: ignore[arg-type]

    async def FailTask(self, request: pb.FailTaskRequest, context: Context) -> pb.FailTaskResponse:
        task_id, token = validation.parse_token(request)
        await require_lease_holder(self.engine.pool, task_id, token)
        failure = Failure(task_id, token, validation.parse_error(request), request.retryable)
        return pb.FailTaskResponse(will_retry=await self.batches.failures.submit(failure))


def _started(started: Started) -> pb.StartExecutionResponse:
    execution = started.execution
    reply = pb.StartExecutionResponse(
        execution_id=execution["id"], workflow_id=execution["workflow_id"], status=execution["status"]
    )
    reply.started_at.CopyFrom(convert.timestamp(execution["started_at"]))
    return reply
