"""The SDK's Client.run_and_wait against a real registry and orchestrator, worked by an SDK Agent."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from orchestrator_svc import watch
from orchestrator_svc.server import build_server as build_orchestrator
from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_runtime.settings import Settings
from ossa_sdk import Agent, Client
from registry_svc.server import build_server as build_registry
from tests import auth
from tests.integration.orchestration import Client as Helper
from tests.integration.orchestration import fast, step

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def targets(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    registry, registry_port = await build_registry(settings, port=0)
    await registry.start()
    orchestrator, port = await build_orchestrator(fast(settings, registry_port), port=0)
    await orchestrator.start()
    yield f"127.0.0.1:{port}", f"127.0.0.1:{registry_port}"
    await orchestrator.stop()
    await registry.stop()


@pytest.fixture(autouse=True)
def no_periodic_reread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only change notifications can end the wait in time (the periodic re-read is out of reach)."""
    monkeypatch.setattr(watch, "REREAD_SECONDS", 60.0)


async def published(targets: tuple[str, str], steps: list[dict[str, Any]]) -> str:
    helper = Helper(*targets)
    try:
        return (await helper.published(steps)).id
    finally:
        await helper.close()


async def test_run_and_wait_returns_the_completed_execution_with_every_change(targets: tuple[str, str]) -> None:
    capability = f"sdk-wait-{secrets.token_hex(3)}"
    workflow_id = await published(targets, [step("a", capability), step("b", capability, depends_on=["a"])])
    agent = Agent(f"sdk-{secrets.token_hex(4)}", capabilities=[capability], handler="echo",
                  registry=targets[1], orchestrator=targets[0], token=auth.ADMIN_TOKEN, grace_seconds=2.0)  # fmt: skip
    serving = asyncio.create_task(agent.serve())
    changes: list[dict[str, Any]] = []
    try:
        async with Client(orchestrator=targets[0], token=auth.ADMIN_TOKEN) as client:
            execution = await client.run_and_wait(workflow_id, context={"doc": "d"}, on_change=changes.append,
                                                   timeout=30)  # fmt: skip
    finally:
        agent.stop()
        await asyncio.wait_for(serving, 10)
    assert execution["status"] == "completed" and set(execution["results"]) == {"a", "b"}
    assert execution["context"] == {"doc": "d"}
    assert changes[0]["initial"] and not any(c["initial"] for c in changes[1:])
    assert changes[-1]["execution"] == execution
    finished = [t["name"] for c in changes for t in c["tasks"] if t["status"] == "completed"]
    assert sorted(finished) == ["a", "b"]


async def test_run_and_wait_returns_a_cancelled_execution_and_async_callbacks_run(targets: tuple[str, str]) -> None:
    workflow_id = await published(targets, [step("idle", f"nobody-{secrets.token_hex(3)}")])
    seen: list[str] = []

    async def on_change(change: dict[str, Any]) -> None:
        seen.append(change["execution"]["status"])
        if change["initial"]:
            await client.orchestrator.CancelExecution(pb.CancelExecutionRequest(execution_id=change["execution"]["id"]))

    async with Client(orchestrator=targets[0], token=auth.ADMIN_TOKEN) as client:
        execution = await client.run_and_wait(workflow_id, on_change=on_change, timeout=30)
    assert execution["status"] == "cancelled" and seen == ["pending", "cancelled"]


async def test_wait_times_out_and_unknown_ids_raise(targets: tuple[str, str]) -> None:
    workflow_id = await published(targets, [step("idle", f"nobody-{secrets.token_hex(3)}")])
    async with Client(orchestrator=targets[0], token=auth.ADMIN_TOKEN) as client:
        execution_id = await client.start(workflow_id)
        with pytest.raises(TimeoutError):
            await client.wait(execution_id, timeout=0.5)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.wait("00000000-0000-4000-8000-000000000000")
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_concurrent_starts_share_calls_and_a_bad_one_fails_alone(targets: tuple[str, str]) -> None:
    workflow_id = await published(targets, [step("idle", f"nobody-{secrets.token_hex(3)}")])
    missing = "00000000-0000-4000-8000-00000000dead"
    async with Client(orchestrator=targets[0], token=auth.ADMIN_TOKEN) as client:
        answers = await asyncio.gather(
            *(client.start(missing if i == 7 else workflow_id, context={"i": i}) for i in range(30)),
            return_exceptions=True,
        )
        assert client._starts.batched > 0  # some went in StartExecutions calls
        bad = answers.pop(7)
        assert isinstance(bad, grpc.aio.AioRpcError) and bad.code() == grpc.StatusCode.NOT_FOUND
        assert all(isinstance(a, str) for a in answers) and len(set(answers)) == 29
        for i, execution_id in enumerate(answers):  # each caller got its own run, with its own context
            reply = await client.orchestrator.GetExecution(pb.GetExecutionRequest(execution_id=str(execution_id)))
            assert reply.execution.context["i"] == (i if i < 7 else i + 1)
