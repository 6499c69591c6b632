"""The orchestrator over real gRPC with real PostgreSQL and Redis: workflows, executions, leases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis

from orchestrator_svc.server import build_server as build_orchestrator
from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_runtime import keys
from ossa_runtime.settings import Settings
from registry_svc.server import build_server as build_registry
from tests.integration.orchestration import Client, fast, step, struct, to_dict

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(settings: Settings) -> AsyncIterator[tuple[Settings, str, str]]:
    registry, registry_port = await build_registry(settings, port=0)
    await registry.start()
    tuned = fast(settings, registry_port)
    orchestrator, port = await build_orchestrator(tuned, port=0)
    await orchestrator.start()
    yield tuned, f"127.0.0.1:{port}", f"127.0.0.1:{registry_port}"
    await orchestrator.stop()
    await registry.stop()


@pytest.fixture
async def client(stack: tuple[Settings, str, str]) -> AsyncIterator[Client]:
    c = Client(stack[1], stack[2])
    yield c
    await c.close()


async def invalid(call: object) -> list[str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    return [err.value.details() or ""]


@pytest.mark.parametrize(
    ("steps", "needle"),
    [
        ([step("a"), step("a")], "duplicates step id 'a'"),
        ([step("a", depends_on=["zz"])], "definition.steps[a].depends_on: unknown step 'zz'"),
        ([step("a", depends_on=["b"]), step("b", depends_on=["a"])], "dependency cycle through a, b"),
        ([step("a", priority=11)], "definition.steps[a].priority: must be between 1 and 10"),
        ([step("a", timeout_seconds=0)], "definition.steps[a].timeout_seconds"),
        ([{"id": "a"}], "definition.steps[a].capability: is required"),
        ([], "definition.steps: must be a non-empty list"),
    ],
)
async def test_invalid_definitions_name_step_and_field(
    client: Client, steps: list[dict[str, object]], needle: str
) -> None:
    request = pb.CreateWorkflowRequest(name="bad", version="1.0.0", definition=struct({"steps": steps}))
    [details] = await invalid(client.orch.CreateWorkflow(request))
    assert needle in details


async def test_workflow_lifecycle(client: Client) -> None:
    request = pb.CreateWorkflowRequest(name="lifecycle", version="1.0.0", definition=struct({"steps": [step("a")]}))
    call = client.orch.CreateWorkflow(request)
    workflow = (await call).workflow
    assert "x-http-code" not in dict(await call.initial_metadata())  # the REST status comes from the route
    assert workflow.status == pb.WorkflowStatus.draft
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.orch.CreateWorkflow(request)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.start(workflow.id)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "published" in (err.value.details() or "")
    published = (await client.orch.PublishWorkflow(pb.PublishWorkflowRequest(workflow_id=workflow.id))).workflow
    assert published.status == pb.WorkflowStatus.published
    deprecated = (await client.orch.DeprecateWorkflow(pb.DeprecateWorkflowRequest(workflow_id=workflow.id))).workflow
    assert deprecated.status == pb.WorkflowStatus.deprecated
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.orch.PublishWorkflow(pb.PublishWorkflowRequest(workflow_id=workflow.id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    listed = (await client.orch.ListWorkflows(pb.ListWorkflowsRequest(name="lifecycle"))).workflows
    assert [w.id for w in listed] == [workflow.id]


async def test_published_definition_is_immutable(client: Client, settings: Settings) -> None:
    workflow = await client.published([step("a")])
    conn = await asyncpg.connect(settings.database_url)
    try:
        with pytest.raises(asyncpg.CheckViolationError, match="immutable"):
            await conn.execute("UPDATE workflows SET definition = '{}' WHERE id = $1", workflow.id)
    finally:
        await conn.close()


async def test_three_step_dag_completes_with_results(client: Client, settings: Settings) -> None:
    agent = await client.agent(["dag"])
    steps = [
        step("fetch", "dag", input={"url": "u"}),
        step("left", "dag", depends_on=["fetch"]),
        step("join", "dag", depends_on=["fetch", "left"]),
    ]
    workflow = await client.published(steps)
    call = client.orch.StartExecution(
        pb.StartExecutionRequest(workflow_id=workflow.id, context=struct({"user": "ada"}), idempotency_key="dag-1")
    )
    started = await call
    assert "x-http-code" not in dict(await call.initial_metadata())  # the REST status comes from the route
    again = await client.orch.StartExecution(pb.StartExecutionRequest(workflow_id=workflow.id, idempotency_key="dag-1"))
    assert again.execution_id == started.execution_id
    async with client.work(agent) as stream:
        for expected in ("fetch", "left", "join"):
            a = await stream.assignment()
            assert a.step_id == expected and a.fencing_token >= 1
            task_input = to_dict(a.input)
            assert task_input["context"] == {"user": "ada"}
            assert task_input["params"] == ({"url": "u"} if expected == "fetch" else {})
            assert (
                set(task_input["upstream"]) == {"fetch": set(), "left": {"fetch"}, "join": {"fetch", "left"}}[expected]
            )
            await client.complete(a, {"step": expected})
    execution = await client.wait_status(started.execution_id, "completed")
    assert to_dict(execution.results) == {s: {"step": s} for s in ("fetch", "left", "join")}
    assert execution.HasField("completed_at")
    r = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        assert (await r.hget(keys.workflow_state(started.execution_id), "status")) == "completed"
        assert await r.lrange(keys.workflow_steps(started.execution_id), 0, -1) == ["fetch", "left", "join"]
    finally:
        await r.aclose()


async def test_priorities_are_served_highest_first_fifo_within(client: Client) -> None:
    workflow = await client.published([step("only", "prio")])
    order = [(3, "p3-first"), (9, "p9"), (3, "p3-second"), (10, "p10")]
    ids = {}
    for priority, label in order:
        ids[await client.start(workflow.id, priority=priority)] = label
    agent = await client.agent(["prio"])
    seen = []
    async with client.work(agent, slots=1) as stream:
        for _ in order:
            a = await stream.assignment()
            seen.append(ids[a.execution_id])
            await client.complete(a, {})
    assert seen == ["p10", "p9", "p3-first", "p3-second"]


async def test_slots_are_never_exceeded(client: Client) -> None:
    workflow = await client.published([step("only", "slots")])
    for _ in range(5):
        await client.start(workflow.id)
    agent = await client.agent(["slots"])
    async with client.work(agent, slots=2) as stream:
        first = [await stream.assignment(), await stream.assignment()]
        with pytest.raises(TimeoutError):
            await stream.next(seconds=0.5)
        await client.complete(first[0], {})
        third = await stream.assignment()
        assert third.task_id not in {a.task_id for a in first}


async def test_expired_lease_goes_to_another_agent_and_late_result_is_rejected(client: Client) -> None:
    workflow = await client.published([step("slow", "expire", lease_seconds=1, timeout_seconds=30, max_retries=2)])
    execution_id = await client.start(workflow.id)
    zombie, rescuer = await client.agent(["expire"]), await client.agent(["expire"])
    async with client.work(zombie) as stream:
        stale = await stream.assignment()
    # the zombie never renews: after its lease runs out the task returns to the queue
    async with client.work(rescuer) as stream:
        fresh = await stream.assignment(seconds=10)
        assert fresh.task_id == stale.task_id and fresh.fencing_token > stale.fencing_token and fresh.attempt == 2
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.complete(stale, {"from": "zombie"})
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "late result" in (err.value.details() or "")
        await client.complete(fresh, {"from": "rescuer"})
    execution = await client.wait_status(execution_id, "completed")
    assert to_dict(execution.results) == {"slow": {"from": "rescuer"}}
    assert execution.retry_count == 1
    task = (await client.orch.GetTask(pb.GetTaskRequest(task_id=fresh.task_id))).task
    assert [(a.outcome, a.late_results) for a in task.attempts] == [("expired", 1), ("completed", 0)]


async def test_renewing_keeps_the_lease(client: Client) -> None:
    workflow = await client.published([step("long", "renew", lease_seconds=1, timeout_seconds=30)])
    execution_id = await client.start(workflow.id)
    agent = await client.agent(["renew"])
    async with client.work(agent) as stream:
        a = await stream.assignment()
        for _ in range(5):  # 2.5 s of work on a 1 s lease
            await asyncio.sleep(0.5)
            await client.orch.RenewLease(pb.RenewLeaseRequest(task_id=a.task_id, fencing_token=a.fencing_token))
        await client.complete(a, {"done": True})
    assert (await client.wait_status(execution_id, "completed")).retry_count == 0


async def test_retries_exhaust_into_a_failed_execution(client: Client) -> None:
    workflow = await client.published(
        [step("flaky", "retry", max_retries=2), step("after", "retry", depends_on=["flaky"])]
    )
    execution_id = await client.start(workflow.id)
    agent = await client.agent(["retry"])
    async with client.work(agent) as stream:
        for attempt in (1, 2, 3):
            a = await stream.assignment()
            assert a.attempt == attempt
            reply = await client.orch.FailTask(
                pb.FailTaskRequest(
                    task_id=a.task_id, fencing_token=a.fencing_token, error=f"boom {attempt}", retryable=True
                )
            )
            assert reply.will_retry == (attempt < 3)
    execution = await client.wait_status(execution_id, "failed")
    assert "flaky" in execution.error and "boom 3" in execution.error
    assert execution.retry_count == 2


async def test_permanent_failure_fails_at_once(client: Client) -> None:
    workflow = await client.published([step("fatal", "permanent", max_retries=5)])
    execution_id = await client.start(workflow.id)
    async with client.work(await client.agent(["permanent"])) as stream:
        a = await stream.assignment()
        reply = await client.orch.FailTask(
            pb.FailTaskRequest(task_id=a.task_id, fencing_token=a.fencing_token, error="bad input", retryable=False)
        )
    assert not reply.will_retry
    assert (await client.wait_status(execution_id, "failed")).retry_count == 0


async def test_cancel_revokes_leases_on_the_stream(client: Client) -> None:
    workflow = await client.published([step("a", "cancel"), step("b", "cancel")])
    execution_id = await client.start(workflow.id)
    async with client.work(await client.agent(["cancel"]), slots=2) as stream:
        held = [await stream.assignment(), await stream.assignment()]
        cancelled = (await client.orch.CancelExecution(pb.CancelExecutionRequest(execution_id=execution_id))).execution
        assert cancelled.status == pb.ExecutionStatus.cancelled
        revoked = {(await stream.next()).cancellation.task_id for _ in held}
        assert revoked == {a.task_id for a in held}
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.complete(held[0], {})
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    tasks = (await client.orch.ListExecutionTasks(pb.ListExecutionTasksRequest(execution_id=execution_id))).tasks
    assert {t.status for t in tasks} == {pb.TaskStatus.failed}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.orch.CancelExecution(pb.CancelExecutionRequest(execution_id="not-a-uuid"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_redis_flush_mid_run_loses_nothing(client: Client, settings: Settings) -> None:
    workflow = await client.published([step("one", "flush"), step("two", "flush", depends_on=["one"])])
    executions = [await client.start(workflow.id) for _ in range(3)]
    r = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        queued = set(await r.zrange(keys.TASKS_PRIORITY, 0, -1))
        assert len(queued) >= 3
        await r.flushdb()
        for _ in range(60):  # the sweeper's mirror check rebuilds the queue keys from PostgreSQL
            if queued <= set(await r.zrange(keys.TASKS_PRIORITY, 0, -1)):
                break
            await asyncio.sleep(0.1)
        assert queued <= set(await r.zrange(keys.TASKS_PRIORITY, 0, -1))
        agent = await client.agent(["flush"])  # registered after the flush, so Redis knows it
        async with client.work(agent, slots=3) as stream:
            for _ in range(6):
                await client.complete(await stream.assignment(), {"ok": 1})
        for execution_id in executions:
            await client.wait_status(execution_id, "completed")
    finally:
        await r.aclose()


async def test_bad_stream_requests_end_with_clear_errors(client: Client) -> None:
    for request, code in (
        (pb.WorkRequest(agent_id="nope", slots=1), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.WorkRequest(agent_id="00000000-0000-4000-8000-000000000000", slots=1), grpc.StatusCode.NOT_FOUND),
        (pb.WorkRequest(agent_id=await client.agent(["x"]), slots=0), grpc.StatusCode.INVALID_ARGUMENT),
    ):
        call = client.orch.Work()
        await call.write(request)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
        assert err.value.code() == code, err.value.details()


async def test_two_orchestrators_never_double_assign(stack: tuple[Settings, str, str], settings: Settings) -> None:
    tuned, first_target, registry_target = stack
    second, port = await build_orchestrator(tuned, port=0)
    await second.start()
    clients = [Client(first_target, registry_target), Client(f"127.0.0.1:{port}", registry_target)]
    try:
        workflow = await clients[0].published([step("unit", "double")])
        executions = [await clients[i % 2].start(workflow.id) for i in range(120)]
        seen: list[str] = []

        async def agent_loop(client: Client) -> None:
            agent = await client.agent(["double"])
            async with client.work(agent, slots=4) as stream:
                while len(seen) < len(executions):
                    try:
                        a = await stream.assignment(seconds=1.0)
                    except TimeoutError:
                        continue
                    seen.append(a.task_id)
                    await client.complete(a, {"by": agent})

        # four agents, two on each orchestrator, racing for the same queue
        await asyncio.wait_for(asyncio.gather(*(agent_loop(clients[i % 2]) for i in range(4))), 60)
        assert len(seen) == len(set(seen)) == len(executions)
        conn = await asyncpg.connect(settings.database_url)
        try:
            attempts = await conn.fetch(
                """SELECT t.id, count(a.*) AS n FROM tasks t JOIN executions e ON e.id = t.execution_id
                   LEFT JOIN task_attempts a ON a.task_id = t.id WHERE e.workflow_id = $1 GROUP BY t.id""",
                workflow.id,
            )
        finally:
            await conn.close()
        assert len(attempts) == len(executions) and {r["n"] for r in attempts} == {1}
        for execution_id in executions:
            assert (await clients[0].execution(execution_id)).status == pb.ExecutionStatus.completed
    finally:
        for c in clients:
            await c.close()
        await second.stop()


async def test_timeout_bounds_an_attempt_even_while_renewing(client: Client) -> None:
    workflow = await client.published([step("stuck", "timeout", lease_seconds=1, timeout_seconds=2, max_retries=1)])
    execution_id = await client.start(workflow.id)
    async with client.work(await client.agent(["timeout"])) as stream:
        a = await stream.assignment()
        rejected = None
        for _ in range(40):  # keeps renewing: the lease never extends past started_at + 2 s
            await asyncio.sleep(0.25)
            try:
                await client.orch.RenewLease(pb.RenewLeaseRequest(task_id=a.task_id, fencing_token=a.fencing_token))
            except grpc.aio.AioRpcError as err:
                rejected = err
                break
        assert rejected is not None and rejected.code() == grpc.StatusCode.FAILED_PRECONDITION
    for _ in range(100):  # the sweeper marks the attempt expired on its next round
        task = (await client.orch.GetTask(pb.GetTaskRequest(task_id=a.task_id))).task
        if task.attempts[0].outcome == "expired":
            break
        await asyncio.sleep(0.05)
    assert task.attempts[0].outcome == "expired"
    assert task.attempts[0].finished_at.ToDatetime() - task.attempts[0].started_at.ToDatetime() < __import__(
        "datetime"
    ).timedelta(seconds=3.5)
    assert (await client.execution(execution_id)).retry_count == 1


async def test_only_live_agents_get_work(client: Client) -> None:
    from ossa.registry.v1 import registry_pb2 as rpb

    workflow = await client.published([step("only", "alive")])
    execution_id = await client.start(workflow.id)
    agent = await client.agent(["alive"])
    beats = client.registry.Heartbeat()
    await beats.write(rpb.HeartbeatRequest(agent_id=agent, status=rpb.AgentStatus.error))
    await beats.read()
    async with client.work(agent) as stream:
        with pytest.raises(TimeoutError):
            await stream.next(seconds=0.6)  # reports error: nothing is handed out
        await beats.write(rpb.HeartbeatRequest(agent_id=agent, status=rpb.AgentStatus.idle))
        await beats.read()
        a = await stream.assignment()
        assert a.execution_id == execution_id
    await beats.done_writing()
