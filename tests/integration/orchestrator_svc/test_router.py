"""Capability routing end to end in one process: a `capability_query` step runs on the agent whose
description matches it, chosen by real semantic search (search_svc with the embedded store and the
local model), through the real registry, orchestrator and SDK agents on loopback."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from orchestrator_svc.server import build_server as build_orchestrator
from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa.search.v1 import search_pb2, search_pb2_grpc
from ossa_runtime.settings import Settings
from ossa_sdk import Agent
from registry_svc.server import build_server as build_registry
from search_svc.server import build_server as build_search
from tests import auth
from tests.integration.orchestration import Client, fast, step

ROLES = {
    "translator": "Translates letters, documents and messages between English, French and German.",
    "summarizer": "Condenses long reports and articles into a short summary of the key points.",
}


@dataclass
class Stack:
    client: Client
    search: search_pb2_grpc.SearchServiceStub
    agents: dict[str, Agent]
    ran: dict[str, list[str]]  # role -> steps it ran


@pytest.fixture(scope="module")
async def stack(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    base = settings.replace(data_dir=tmp_path_factory.mktemp("routing"), search_index_poll_seconds=0.1)
    registry, registry_port = await build_registry(base, port=0)
    await registry.start()
    search, search_port = await build_search(base, port=0)
    await search.start()
    tuned = fast(base, registry_port).replace(search_port=search_port, routing_poll_seconds=0.2)
    orchestrator, port = await build_orchestrator(tuned, port=0)
    await orchestrator.start()
    target, suffix = f"127.0.0.1:{port}", secrets.token_hex(3)
    ran: dict[str, list[str]] = {role: [] for role in ROLES}

    def handler(role: str) -> Any:
        async def run(task_input: dict[str, Any]) -> dict[str, Any]:
            ran[role].append(task_input["params"].get("name", "?"))
            return {"by": role}

        return run

    agents = {
        role: Agent(
            f"{role}-{suffix}",
            capabilities=[f"{role}-{suffix}"],
            handler=handler(role),
            registry=f"127.0.0.1:{registry_port}",
            orchestrator=target,
            metadata={"description": text},
            heartbeat_interval=0.2,
            grace_seconds=1.0,
            token=auth.ADMIN_TOKEN,
        )
        for role, text in ROLES.items()
    }
    serving = [asyncio.create_task(a.serve()) for a in agents.values()]
    channel = auth.channel(f"127.0.0.1:{search_port}")
    stub = search_pb2_grpc.SearchServiceStub(channel)
    client = Client(target, f"127.0.0.1:{registry_port}")
    try:
        await indexed(stub, {a.name for a in agents.values()})
        yield Stack(client, stub, agents, ran)
    finally:
        for a in agents.values():
            a.stop()
        await asyncio.gather(*serving, return_exceptions=True)
        await client.close()
        await channel.close()
        await orchestrator.stop()
        await search.stop()
        await registry.stop()


async def indexed(stub: search_pb2_grpc.SearchServiceStub, names: set[str]) -> None:
    """Wait until the search service has indexed the agents (its outbox indexer is asynchronous)."""
    for _ in range(600):
        reply = await stub.SearchAgents(search_pb2.SearchAgentsRequest(query="agent", limit=100))
        if names <= {m.agent.name for m in reply.results}:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"agents {names} never indexed")


async def routed_task(stack: Stack, execution_id: str, seconds: float = 30.0) -> pb.Task:
    for _ in range(int(seconds / 0.1)):
        tasks = (
            await stack.client.orch.ListExecutionTasks(pb.ListExecutionTasksRequest(execution_id=execution_id))
        ).tasks
        if tasks and tasks[0].routing_note:
            return (await stack.client.orch.GetTask(pb.GetTaskRequest(task_id=tasks[0].id))).task
        await asyncio.sleep(0.1)
    raise AssertionError("the task was never looked at by the router")


@pytest.mark.parametrize(
    ("query", "role"),
    [("turn this letter into French", "translator"), ("give me the gist of this long report", "summarizer")],
)
async def test_a_capability_query_step_runs_on_the_matching_agent(stack: Stack, query: str, role: str) -> None:
    workflow = await stack.client.published([{"id": "work", "capability_query": query, "input": {"name": query}}])
    execution_id = await stack.client.start(workflow.id)
    execution = await stack.client.wait_status(execution_id, "completed", "failed", seconds=30)
    assert execution.status == pb.ExecutionStatus.completed, execution.error
    assert query in stack.ran[role] and all(query not in steps for r, steps in stack.ran.items() if r != role)
    (task,) = (
        await stack.client.orch.ListExecutionTasks(pb.ListExecutionTasksRequest(execution_id=execution_id))
    ).tasks
    detail = (await stack.client.orch.GetTask(pb.GetTaskRequest(task_id=task.id))).task
    chosen = stack.agents[role]
    assert (detail.capability_query, detail.routed_agent_id, detail.agent_id) == (query, chosen.id, chosen.id)
    assert 0 < detail.routing_score <= 1 and f"routed to {chosen.name}" in detail.routing_note


async def test_no_agent_above_the_threshold_leaves_the_task_waiting_and_says_why(stack: Stack) -> None:
    steps = [step("never", capability_query="repair a diesel engine", min_score=0.999)]
    steps[0].pop("capability")
    workflow = await stack.client.published(steps)
    execution_id = await stack.client.start(workflow.id)
    task = await routed_task(stack, execution_id)
    assert task.status == pb.TaskStatus.pending and not task.routed_agent_id
    assert "no live agent matches the query with a score of at least 0.999" in task.routing_note
    await stack.client.orch.CancelExecution(pb.CancelExecutionRequest(execution_id=execution_id))
