"""Review loops with real servers: a producer's output goes to a critic (or judge) agent until it is
accepted, each round a task with its own lease; rejects carry the feedback back; a loop that never
converges fails the execution (or keeps the last output, as declared). Real registry, orchestrator
and SDK agents (ossa_sdk.roles) on loopback."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa.registry.v1 import registry_pb2 as rpb
from ossa_runtime.settings import Settings
from ossa_sdk import Agent
from ossa_sdk.roles import critic, judge, producer
from tests.integration.orchestration import Client, serving, step, tasks_by_name, to_dict


@dataclass
class Stack:
    client: Client
    suffix: str
    reviewed: list[dict[str, Any]]  # every review input the critic saw


@pytest.fixture(scope="module")
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    suffix = secrets.token_hex(3)
    reviewed: list[dict[str, Any]] = []

    def write(params: dict[str, Any], context: dict[str, Any], feedback: Any) -> dict[str, Any]:
        words = int(params.get("words", 1))
        grown = 0 if feedback is None or params.get("stubborn") else int(feedback["needed"])
        return {"text": " ".join(["word"] * max(words, grown)), "saw_feedback": feedback}

    def long_enough(output: Any, task_input: dict[str, Any]) -> tuple[bool, Any]:
        reviewed.append(task_input)
        needed = int(task_input["params"].get("min_words", 3))
        count = len(str(output.get("text", "")).split())
        return count >= needed, {"needed": needed, "had": count}

    def score(output: Any, task_input: dict[str, Any]) -> float:
        return float(len(str(output.get("text", "")).split()))

    def agents(common: dict[str, Any]) -> list[Agent]:
        return [
            Agent(f"writer-{suffix}", capabilities=[f"write-{suffix}"], handler=producer(write), slots=2, **common),
            Agent(
                f"critic-{suffix}",
                type="critic",
                capabilities=[f"review-{suffix}"],
                handler=critic(long_enough),
                slots=2,
                **common,
            ),
            Agent(
                f"judge-{suffix}", type="judge", capabilities=[f"review-{suffix}"], handler=judge(score, 5.0), **common
            ),
        ]

    async with serving(settings, agents) as client:
        yield Stack(client, suffix, reviewed)


def reviewed_step(stack: Stack, review: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return step("draft", f"write-{stack.suffix}", review={"by": f"review-{stack.suffix}", **review}, **fields)


async def tasks_of(stack: Stack, execution_id: str) -> dict[str, pb.Task]:
    return await tasks_by_name(stack.client, execution_id)


async def test_a_rejected_draft_goes_back_with_feedback_until_the_critic_accepts(stack: Stack) -> None:
    steps = [
        reviewed_step(stack, {"input": {"min_words": 4}}, input={"words": 1}),
        step("publish", f"write-{stack.suffix}", depends_on=["draft"]),
    ]
    workflow = await stack.client.published(steps)
    execution_id = await stack.client.start(workflow.id, context={"topic": "agents"})
    execution = await stack.client.wait_status(execution_id, "completed", "failed", seconds=30)
    assert execution.status == pb.ExecutionStatus.completed, execution.error
    results = to_dict(execution)["results"]
    assert results["draft"]["text"] == "word word word word"  # round 2's output, accepted
    assert results["draft"]["saw_feedback"] == {"needed": 4.0, "had": 1.0}
    assert results["publish"]["text"] == "word"  # the dependent ran once, after the accept
    tasks = await tasks_of(stack, execution_id)
    assert sorted(tasks) == ["draft~1", "draft~1.review", "draft~2", "draft~2.review", "publish"]
    assert all(t.status == pb.TaskStatus.completed and t.attempt == 1 for t in tasks.values())
    assert tasks["draft~1.review"].agent_type == "critic"
    first = to_dict(tasks["draft~1.review"])["input"]
    produced = {"text": "word", "saw_feedback": None}
    assert first["review"] == {"step": "draft", "round": 1.0, "max_rounds": 3.0, "output": produced}
    assert first["params"] == {"min_words": 4.0} and first["context"] == {"topic": "agents"}
    again = to_dict(tasks["draft~2"])["input"]
    assert again["upstream"]["review"]["round"] == 1.0
    assert again["upstream"]["review"]["feedback"]["verdict"] == "reject"


async def test_a_loop_that_never_converges_fails_the_execution(stack: Stack) -> None:
    review = {"max_rounds": 2, "input": {"min_words": 99}}
    workflow = await stack.client.published([reviewed_step(stack, review, input={"stubborn": True})])
    execution_id = await stack.client.start(workflow.id)
    execution = await stack.client.wait_status(execution_id, "completed", "failed", seconds=30)
    assert execution.status == pb.ExecutionStatus.failed
    assert execution.error == "step draft: not accepted after 2 review rounds"
    assert sorted(await tasks_of(stack, execution_id)) == ["draft~1", "draft~1.review", "draft~2", "draft~2.review"]
    assert "draft" not in to_dict(execution).get("results", {})


async def test_on_exhausted_accept_keeps_the_last_round(stack: Stack) -> None:
    review = {"max_rounds": 1, "on_exhausted": "accept", "input": {"min_words": 99}}
    workflow = await stack.client.published([reviewed_step(stack, review, input={"words": 2, "stubborn": True})])
    execution_id = await stack.client.start(workflow.id)
    execution = await stack.client.wait_status(execution_id, "completed", "failed", seconds=30)
    assert execution.status == pb.ExecutionStatus.completed, execution.error
    assert to_dict(execution)["results"]["draft"]["text"] == "word word"


async def test_a_judge_scores_and_only_judges_take_the_review(stack: Stack) -> None:
    review = {"agent_type": "judge", "accept_when": {"field": "verdict", "equals": "accept"}}
    workflow = await stack.client.published([reviewed_step(stack, review, input={"words": 5})])
    execution_id = await stack.client.start(workflow.id)
    execution = await stack.client.wait_status(execution_id, "completed", "failed", seconds=30)
    assert execution.status == pb.ExecutionStatus.completed, execution.error
    tasks = await tasks_of(stack, execution_id)
    verdict = to_dict(tasks["draft~1.review"])["output"]
    assert verdict["verdict"] == "accept" and verdict["score"] == 5.0
    request = rpb.GetAgentRequest(agent_id=tasks["draft~1.review"].agent_id)
    agent = await stack.client.registry.GetAgent(request)
    assert agent.agent.name == f"judge-{stack.suffix}"


async def test_bad_review_declarations_name_the_field(stack: Stack) -> None:
    for review, field in [
        ({}, "review.by"),
        ({"by": "x", "by_query": "y"}, "review.by"),
        ({"by": "x", "agent_type": "worker"}, "review.agent_type"),
        ({"by": "x", "max_rounds": 0}, "review.max_rounds"),
        ({"by": "x", "accept_when": {"field": "v"}}, "review.accept_when"),
        ({"by": "x", "on_exhausted": "maybe"}, "review.on_exhausted"),
        ({"by": "x", "colour": 1}, "review.colour"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.client.published([step("draft", "w", review=review)])
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"definition.steps[draft].{field}" in (err.value.details() or ""), (review, err.value.details())
