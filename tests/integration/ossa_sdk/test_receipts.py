"""The SDK's batched Work stream against the real orchestrator (real PostgreSQL, Redis and gRPC).

Completions, failures and renewals ride on the stream and are settled by receipts; nothing goes
by the unary RPCs while the stream carries reports.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from orchestrator_svc.server import build_server as build_orchestrator
from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_runtime.settings import Settings
from ossa_sdk import Agent, PermanentError
from registry_svc.server import build_server as build_registry
from tests import auth
from tests.integration.orchestration import Client, fast, step, to_dict

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    registry, registry_port = await build_registry(settings.replace(heartbeat_interval_seconds=1), port=0)
    await registry.start()
    orchestrator, port = await build_orchestrator(fast(settings, registry_port), port=0)
    await orchestrator.start()
    yield f"127.0.0.1:{port}", f"127.0.0.1:{registry_port}"
    await orchestrator.stop()
    await registry.stop()


@pytest.fixture
async def client(stack: tuple[str, str]) -> AsyncIterator[Client]:
    c = Client(*stack)
    yield c
    await c.close()


async def eventually(check: Callable[[], Any], what: str, seconds: float = 20.0) -> Any:
    for _ in range(int(seconds / 0.02)):
        if result := check():
            return result
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@asynccontextmanager
async def serving(stack: tuple[str, str], capability: str, handler: Any, slots: int = 16) -> AsyncIterator[Agent]:
    agent = Agent(
        f"batched-{secrets.token_hex(3)}",
        capabilities=[capability],
        slots=slots,
        handler=handler,
        orchestrator=stack[0],
        registry=stack[1],
        token=auth.ADMIN_TOKEN,
        heartbeat_interval=0.2,
        grace_seconds=1.0,
    )
    task = asyncio.create_task(agent.serve())
    try:
        await eventually(lambda: (agent._work is not None and agent._work.sessions) or task.done(), "the Work stream")
        yield agent
    finally:
        agent.stop()
        await asyncio.wait_for(task, 30)


def carried(agent: Agent) -> int:
    """Reports the agent's Work stream carried (and none by RPC)."""
    work = agent._work
    assert work is not None
    assert work.unary_reports == 0, f"{work.unary_reports} report(s) went by RPC"
    outbox = work.outbox
    return outbox.sent if outbox is not None else 0


class Gate:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0
        self.cancelled = 0

    async def __call__(self, task_input: dict[str, Any]) -> dict[str, Any]:
        self.started += 1
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return {"n": task_input["context"].get("n")}


async def test_many_tasks_complete_through_the_stream(stack: tuple[str, str], client: Client) -> None:
    capability = f"batched-{secrets.token_hex(3)}"
    gate = Gate()
    workflow = await client.published([step("only", capability)])
    async with serving(stack, capability, gate) as agent:
        executions = [await client.start(workflow.id, context={"n": n}) for n in range(24)]
        await eventually(lambda: gate.started == 16, "16 running handlers")
        await eventually(lambda: agent._work is not None and agent._work.outbox is not None, "a batched stream")
        gate.release.set()  # 16 finish at once; the other 8 follow
        for n, execution_id in enumerate(executions):
            execution = await client.wait_status(execution_id, "completed")
            assert to_dict(execution.results) == {"only": {"n": n}}
        await eventually(lambda: not agent._pool or not agent._pool.runs, "every run to end")
        outbox = agent._work.outbox if agent._work else None
        assert outbox is not None and outbox.sent == outbox.receipts == 24 and outbox.writes < 24
        assert carried(agent) == 24


async def test_failures_and_permanent_errors_through_the_stream(stack: tuple[str, str], client: Client) -> None:
    capability = f"batched-{secrets.token_hex(3)}"
    calls: list[int] = []

    async def flaky(task_input: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        if task_input["params"].get("permanent"):
            raise PermanentError("bad input")
        if len(calls) == 1:
            raise RuntimeError("first try fails")
        return {"ok": True}

    retried = await client.published([step("only", capability, max_retries=2)])
    doomed = await client.published([step("only", capability, input={"permanent": True}, max_retries=2)])
    async with serving(stack, capability, flaky, slots=1) as agent:
        first = await client.start(retried.id)
        assert to_dict((await client.wait_status(first, "completed")).results) == {"only": {"ok": True}}
        second = await client.start(doomed.id)
        failed = await client.wait_status(second, "failed")
        assert "PermanentError: bad input" in failed.error
        assert carried(agent) >= 1


async def test_renewals_through_the_stream_keep_a_lease(stack: tuple[str, str], client: Client) -> None:
    capability = f"batched-{secrets.token_hex(3)}"
    gate = Gate()
    workflow = await client.published([step("only", capability, lease_seconds=1, timeout_seconds=60)])
    async with serving(stack, capability, gate) as agent:
        execution_id = await client.start(workflow.id, context={"n": 1})
        await eventually(lambda: gate.started, "the handler")
        pool = agent._pool
        assert pool is not None
        (run,) = pool.runs.values()
        await eventually(lambda: run.renewals >= 4, "4 renewals (more than the lease)")
        gate.release.set()
        execution = await client.wait_status(execution_id, "completed")
        assert to_dict(execution.results) == {"only": {"n": 1}} and carried(agent) >= 5
        (task,) = (await client.orch.ListExecutionTasks(pb.ListExecutionTasksRequest(execution_id=execution_id))).tasks
        assert task.attempt == 1


async def test_a_stale_completion_in_a_batch_is_rejected_and_not_retried(
    stack: tuple[str, str], client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    capability = f"batched-{secrets.token_hex(3)}"
    gate = Gate()
    workflow = await client.published([step("only", capability, lease_seconds=1, timeout_seconds=60, max_retries=3)])
    async with serving(stack, capability, gate) as agent:
        execution_id = await client.start(workflow.id)
        await eventually(lambda: gate.started, "the handler")
        pool = agent._pool
        assert pool is not None
        (run,) = pool.runs.values()
        await eventually(lambda: run.renewals >= 1, "a renewal on the stream")
        pool.renewals.discard(run)  # the agent hangs: its lease expires and the task is queued again

        async def requeued() -> pb.Task:
            while True:
                reply = await client.orch.ListExecutionTasks(pb.ListExecutionTasksRequest(execution_id=execution_id))
                task: pb.Task = reply.tasks[0]
                if task.attempt >= 2 or task.status == pb.TaskStatus.pending:
                    return task
                await asyncio.sleep(0.05)

        await asyncio.wait_for(requeued(), 20)
        with caplog.at_level(logging.WARNING, logger="ossa.sdk"):
            gate.release.set()
            await eventually(lambda: not pool.runs, "the run to end")
        assert any("rejected (FAILED_PRECONDITION" in r.getMessage() for r in caplog.records)
        assert carried(agent) >= 2  # the renewal and the stale completion, none retried by RPC
        task = (await client.orch.GetTask(pb.GetTaskRequest(task_id=run.task_id))).task
        assert task.attempts[0].late_results == 1


async def test_a_cancellation_reaches_the_handler(stack: tuple[str, str], client: Client) -> None:
    capability = f"batched-{secrets.token_hex(3)}"
    gate = Gate()
    workflow = await client.published([step("only", capability)])
    async with serving(stack, capability, gate, slots=1) as agent:
        execution_id = await client.start(workflow.id)
        await eventually(lambda: gate.started, "the handler")
        await client.orch.CancelExecution(pb.CancelExecutionRequest(execution_id=execution_id))
        await eventually(lambda: gate.cancelled, "the handler to be cancelled")
        await eventually(lambda: agent.running == 0, "the slot to be free")
        assert carried(agent) == 0
