"""Approval gates with real servers: a governor agent decides, or a person through ApproveTask /
RejectTask; the execution waits visibly, nothing is leased while it waits; timeouts fail it. Real
registry, orchestrator and SDK agents (ossa_sdk.roles) on loopback."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_runtime.settings import Settings
from ossa_sdk import Agent
from ossa_sdk.roles import cautious_governor
from tests.integration.orchestration import Client, serving, step, tasks_by_name, to_dict


@dataclass
class Stack:
    client: Client
    suffix: str


@pytest.fixture(scope="module")
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    suffix = secrets.token_hex(3)

    def agents(common: dict[str, Any]) -> list[Agent]:
        return [
            Agent(f"worker-{suffix}", capabilities=[f"deploy-{suffix}"], handler="echo", slots=2, **common),
            Agent(
                f"gov-{suffix}",
                type="governor",
                capabilities=[f"approve-{suffix}"],
                handler=cautious_governor,
                **common,
            ),
        ]

    async with serving(settings, agents) as client:
        yield Stack(client, suffix)


async def tasks_of(stack: Stack, execution_id: str) -> dict[str, pb.Task]:
    return await tasks_by_name(stack.client, execution_id)


async def waiting_gate(stack: Stack, execution_id: str) -> pb.Task:
    execution = await stack.client.wait_status(execution_id, "waiting_approval", seconds=10)
    assert execution.status == pb.ExecutionStatus.waiting_approval
    gate = (await tasks_of(stack, execution_id))["deploy~approval"]
    assert gate.status == pb.TaskStatus.waiting_approval and not gate.agent_id and gate.attempt == 0
    return gate


def gated(stack: Stack, by: str, **approval: object) -> list[dict[str, object]]:
    return [
        step("build", f"deploy-{stack.suffix}"),
        step("deploy", f"deploy-{stack.suffix}", depends_on=["build"], approval={"by": by, **approval},
             input={"env": "prod"}),
    ]  # fmt: skip


async def test_a_person_approves_and_the_step_runs_with_its_input(stack: Stack) -> None:
    workflow = await stack.client.published(gated(stack, "human"))
    execution_id = await stack.client.start(workflow.id, context={"ticket": 7})
    gate = await waiting_gate(stack, execution_id)
    assert to_dict(gate)["input"]["approval"] == {
        "step": "deploy", "by": "human", "capability": f"deploy-{stack.suffix}", "timeout_seconds": 3600.0,
    }  # fmt: skip
    await asyncio.sleep(0.3)  # nothing leases a gate waiting for a person
    assert (await tasks_of(stack, execution_id))["deploy~approval"].status == pb.TaskStatus.waiting_approval
    reply = await stack.client.orch.ApproveTask(pb.ApproveTaskRequest(task_id=gate.id, reason="change window open"))
    decided = to_dict(reply.task)
    assert decided["status"] == "completed"
    assert decided["output"] == {"approved": True, "by": "test-admin", "reason": "change window open"}
    execution = await stack.client.wait_status(execution_id, "completed", "failed", seconds=15)
    assert execution.status == pb.ExecutionStatus.completed, execution.error
    results = to_dict(execution)["results"]
    assert results["deploy"]["params"] == {"env": "prod"} and "build" in results["deploy"]["upstream"]
    with pytest.raises(grpc.aio.AioRpcError) as err:  # decided already
        await stack.client.orch.ApproveTask(pb.ApproveTaskRequest(task_id=gate.id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "not waiting" in (err.value.details() or "")


async def test_a_person_rejects_and_the_execution_fails_naming_who_and_why(stack: Stack) -> None:
    workflow = await stack.client.published(gated(stack, "human"))
    execution_id = await stack.client.start(workflow.id)
    gate = await waiting_gate(stack, execution_id)
    await stack.client.orch.RejectTask(pb.RejectTaskRequest(task_id=gate.id, reason="freeze"))
    execution = await stack.client.wait_status(execution_id, "failed", seconds=10)
    assert execution.error == "step deploy: rejected by test-admin: freeze"
    assert "deploy" not in await tasks_of(stack, execution_id)


async def test_an_undecided_gate_times_out(stack: Stack) -> None:
    workflow = await stack.client.published(gated(stack, "human", timeout_seconds=1))
    execution_id = await stack.client.start(workflow.id)
    await waiting_gate(stack, execution_id)
    execution = await stack.client.wait_status(execution_id, "failed", seconds=10)
    assert execution.error == "step deploy: approval timed out after 1 s"
    gate = (await tasks_of(stack, execution_id))["deploy~approval"]
    assert gate.status == pb.TaskStatus.failed and gate.error == "approval timed out after 1 s"


@pytest.mark.parametrize(("risk", "status"), [("low", "completed"), ("high", "failed")])
async def test_a_governor_agent_decides(stack: Stack, risk: str, status: str) -> None:
    workflow = await stack.client.published(gated(stack, "governor", capability=f"approve-{stack.suffix}"))
    execution_id = await stack.client.start(workflow.id, context={"risk": risk})
    execution = await stack.client.wait_status(execution_id, "completed", "failed", seconds=15)
    assert pb.ExecutionStatus.Value.Name(execution.status) == status, execution.error
    gate = (await tasks_of(stack, execution_id))["deploy~approval"]
    assert gate.agent_type == "governor" and gate.status == pb.TaskStatus.completed
    if status == "failed":
        assert execution.error.startswith("step deploy: rejected by governor ")
        assert execution.error.endswith("refused: the execution's context says risk=high")


async def test_bad_decisions_and_declarations_name_the_field(stack: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.client.orch.ApproveTask(pb.ApproveTaskRequest(task_id="nope"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "task_id" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.client.orch.RejectTask(pb.RejectTaskRequest(task_id="00000000-0000-4000-8000-000000000000"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:  # JSONB cannot store NUL: refused, not a 500
        await stack.client.orch.RejectTask(
            pb.RejectTaskRequest(task_id="00000000-0000-4000-8000-000000000000", reason="a\x00b")
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "reason" in (err.value.details() or "")
    for approval, field in [
        ({"by": "boss"}, "approval.by"),
        ({"by": "human", "timeout_seconds": 0}, "approval.timeout_seconds"),
        ({"by": "human", "capability": "x"}, "approval.capability"),
        ({"by": "governor", "when": "now"}, "approval.when"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.client.published([step("deploy", "w", approval=approval)])
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"definition.steps[deploy].{field}" in (err.value.details() or ""), err.value.details()
