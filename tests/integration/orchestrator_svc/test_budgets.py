"""Budgets with real servers: an execution bounded in tasks, seconds or reported cost fails when it has
spent one of them, naming which, and its unfinished tasks are failed with it. Real registry,
orchestrator and SDK agents (reporting cost with ossa_sdk.TaskResult) on loopback."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_runtime.settings import Settings
from ossa_sdk import Agent, TaskResult
from tests.integration.orchestration import Client, serving, step, struct, tasks_by_name, to_dict


@dataclass
class Stack:
    client: Client
    cap: str


@pytest.fixture(scope="module")
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    cap = f"work-{secrets.token_hex(3)}"

    async def costly(task_input: dict[str, Any]) -> TaskResult:
        return TaskResult({"ok": True}, cost=float(task_input["params"].get("cost", 0)))

    def agents(common: dict[str, Any]) -> list[Agent]:
        return [Agent(f"costly-{cap}", capabilities=[cap], handler=costly, slots=4, **common)]

    async with serving(settings, agents) as client:
        yield Stack(client, cap)


async def start(stack: Stack, steps: list[dict[str, Any]], **budget: Any) -> str:
    workflow = await stack.client.published(steps)
    reply = await stack.client.orch.StartExecution(
        pb.StartExecutionRequest(workflow_id=workflow.id, context=struct({}), budget=pb.Budget(**budget))
    )
    return reply.execution_id


async def tasks_of(stack: Stack, execution_id: str) -> dict[str, pb.Task]:
    return await tasks_by_name(stack.client, execution_id)


def chain(stack: Stack, n: int, cost: float = 0) -> list[dict[str, Any]]:
    return [
        step(f"s{i}", stack.cap, input={"cost": cost}, **({"depends_on": [f"s{i - 1}"]} if i else {})) for i in range(n)
    ]


async def test_max_tasks_stops_the_run_before_the_next_task(stack: Stack) -> None:
    execution_id = await start(stack, chain(stack, 3), max_tasks=2)
    execution = await stack.client.wait_status(execution_id, "completed", "failed", seconds=15)
    assert execution.status == pb.ExecutionStatus.failed
    assert execution.error == "budget exhausted: max_tasks 2 reached"
    assert sorted(await tasks_of(stack, execution_id)) == ["s0", "s1"]
    assert to_dict(execution)["budget"] == {"max_tasks": 2}


async def test_a_budget_that_fits_changes_nothing(stack: Stack) -> None:
    execution_id = await start(stack, chain(stack, 3, cost=0.25), max_tasks=3, max_cost=1.0, max_seconds=60)
    execution = await stack.client.wait_status(execution_id, "completed", "failed", seconds=15)
    assert execution.status == pb.ExecutionStatus.completed, execution.error
    assert execution.spent_cost == pytest.approx(0.75)


async def test_max_cost_fails_the_run_and_cancels_what_is_queued(stack: Stack) -> None:
    steps = [
        step("costly", stack.cap, input={"cost": 2.5}),
        step("never", f"nobody-{stack.cap}"),  # a parallel branch no agent takes: still queued
        step("after", stack.cap, depends_on=["costly"]),
    ]
    execution_id = await start(stack, steps, max_cost=1.0)
    execution = await stack.client.wait_status(execution_id, "completed", "failed", seconds=15)
    assert execution.status == pb.ExecutionStatus.failed
    assert execution.error == "budget exhausted: cost 2.5 of max_cost 1"
    assert execution.spent_cost == 2.5
    tasks = await tasks_of(stack, execution_id)
    assert sorted(tasks) == ["costly", "never"]
    assert tasks["never"].status == pb.TaskStatus.failed
    assert tasks["never"].error == "execution failed: budget exhausted: cost 2.5 of max_cost 1"


async def test_max_seconds_fails_a_run_that_takes_too_long(stack: Stack) -> None:
    execution_id = await start(stack, [step("stuck", f"nobody-{stack.cap}")], max_seconds=1)
    execution = await stack.client.wait_status(execution_id, "failed", seconds=10)
    assert execution.error == "budget exhausted: max_seconds 1 passed"
    assert (await tasks_of(stack, execution_id))["stuck"].status == pb.TaskStatus.failed


@pytest.mark.parametrize(
    ("budget", "field"),
    [
        ({"max_tasks": -1}, "budget.max_tasks"),
        ({"max_seconds": -5}, "budget.max_seconds"),
        ({"max_cost": float("nan")}, "budget.max_cost"),
        ({}, "budget"),
    ],
)
async def test_bad_budgets_name_the_field(stack: Stack, budget: dict[str, Any], field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await start(stack, chain(stack, 1), **budget)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{field}:" in (err.value.details() or ""), err.value.details()


async def test_a_budget_smaller_than_the_roots_is_refused(stack: Stack) -> None:
    steps = [step("a", stack.cap), step("b", stack.cap)]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await start(stack, steps, max_tasks=1)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "budget.max_tasks: the workflow starts with 2 tasks at once" in (err.value.details() or "")


async def test_a_negative_cost_is_refused_naming_the_field(stack: Stack) -> None:
    agent_id = await stack.client.agent([f"manual-{stack.cap}"])
    execution_id = await start(stack, [step("m", f"manual-{stack.cap}")], max_cost=5)
    async with stack.client.work(agent_id) as stream:
        assignment = None
        while assignment is None:
            message = await stream.next()
            assignment = message.assignment if message.HasField("assignment") else None
            if message.batch.assignments:
                assignment = message.batch.assignments[0]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.client.orch.CompleteTask(
                pb.CompleteTaskRequest(
                    task_id=assignment.task_id, fencing_token=assignment.fencing_token, output=struct({}), cost=-1
                )
            )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "cost" in (err.value.details() or "")
    assert (await stack.client.execution(execution_id)).status != pb.ExecutionStatus.completed
