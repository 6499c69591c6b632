"""Workflows, executions and tasks over REST through Envoy (agents here are raw gRPC clients)."""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import pytest

from tests.e2e.platform import Platform, request
from tests.e2e.test_rest_agents import assert_error, register

pytestmark = pytest.mark.e2e


def workflow_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"wf-{secrets.token_hex(4)}",
        "version": "1.0.0",
        "description": "summarise then review",
        "definition": {
            "steps": [
                {"id": "summarize", "capability": "summarize", "input": {"max_words": 50}},
                {"id": "review", "capability": "review", "depends_on": ["summarize"], "priority": 7},
            ]
        },
    }
    body.update(changes)
    return body


def create_workflow(platform: Platform, **changes: Any) -> dict[str, Any]:
    status, _, workflow = request(platform.gateway, "POST", "/api/v1/workflows", workflow_body(**changes))
    assert status == 201, workflow
    return workflow


def publish(platform: Platform, workflow_id: str) -> dict[str, Any]:
    status, _, workflow = request(platform.gateway, "POST", f"/api/v1/workflows/{workflow_id}/publish", {})
    assert status == 200, workflow
    return workflow


def test_workflow_create_publish_deprecate(platform: Platform) -> None:
    workflow = create_workflow(platform)
    assert workflow["status"] == "draft" and workflow["definition"]["steps"][0]["id"] == "summarize"
    uuid.UUID(workflow["id"])
    status, headers, body = request(platform.gateway, "POST", "/api/v1/workflows", workflow_body(name=workflow["name"]))
    assert_error(status, headers, body, 409, workflow["name"])
    assert publish(platform, workflow["id"])["status"] == "published"
    status, _, listed = request(platform.gateway, "GET", f"/api/v1/workflows?status=published&name={workflow['name']}")
    assert status == 200 and [w["id"] for w in listed] == [workflow["id"]]
    status, _, deprecated = request(platform.gateway, "POST", f"/api/v1/workflows/{workflow['id']}/deprecate", {})
    assert status == 200 and deprecated["status"] == "deprecated"
    status, headers, body = request(platform.gateway, "POST", f"/api/v1/workflows/{workflow['id']}/publish", {})
    assert_error(status, headers, body, 400, "deprecated")


@pytest.mark.parametrize(
    ("definition", "needle"),
    [
        ({"steps": [{"id": "a", "capability": "x", "depends_on": ["b"]}]}, "definition.steps[a].depends_on"),
        ({"steps": [{"id": "a", "capability": "x", "priority": 0}]}, "definition.steps[a].priority"),
        ({"steps": [{"id": "a"}]}, "definition.steps[a].capability"),
        ({"steps": []}, "definition.steps"),
        ({"stages": []}, "definition"),
    ],
)
def test_invalid_definition_is_400_naming_step_and_field(
    platform: Platform, definition: dict[str, Any], needle: str
) -> None:
    status, headers, body = request(platform.gateway, "POST", "/api/v1/workflows", workflow_body(definition=definition))
    assert_error(status, headers, body, 400, needle)


def test_orchestrate_runs_only_published_workflows_and_is_idempotent(platform: Platform) -> None:
    workflow = create_workflow(platform)
    status, headers, body = request(platform.gateway, "POST", "/api/v1/orchestrate", {"workflow_id": workflow["id"]})
    assert_error(status, headers, body, 400, "published")
    publish(platform, workflow["id"])
    start = {"workflow_name": workflow["name"], "workflow_version": "1.0.0", "context": {"doc": "d1"}}
    key = f"key-{secrets.token_hex(4)}"
    status, _, started = request(platform.gateway, "POST", "/api/v1/orchestrate", {**start, "idempotency_key": key})
    assert status == 202, started
    assert set(started) == {"execution_id", "workflow_id", "status", "started_at"}
    assert started["workflow_id"] == workflow["id"] and started["status"] == "pending"
    status, _, again = request(platform.gateway, "POST", "/api/v1/orchestrate", {**start, "idempotency_key": key})
    assert status == 202 and again["execution_id"] == started["execution_id"]
    status, _, execution = request(platform.gateway, "GET", f"/api/v1/executions/{started['execution_id']}")
    assert status == 200
    for key_ in ("id", "workflow_id", "status", "started_at", "context", "results", "error", "retry_count"):
        assert key_ in execution, execution
    assert execution["context"] == {"doc": "d1"} and execution["results"] == {}
    status, _, tasks = request(platform.gateway, "GET", f"/api/v1/executions/{started['execution_id']}/tasks")
    assert status == 200 and [t["name"] for t in tasks] == ["summarize"]
    assert tasks[0]["status"] == "pending" and tasks[0]["input"]["params"] == {"max_words": 50}
    status, _, task = request(platform.gateway, "GET", f"/api/v1/tasks/{tasks[0]['id']}")
    assert status == 200 and task["id"] == tasks[0]["id"]
    status, _, listed = request(
        platform.gateway, "GET", f"/api/v1/executions?workflow_id={workflow['id']}&status=pending"
    )
    assert status == 200 and [e["id"] for e in listed] == [started["execution_id"]]
    status, _, cancelled = request(platform.gateway, "POST", f"/api/v1/executions/{started['execution_id']}/cancel", {})
    assert status == 200 and cancelled["status"] == "cancelled"
    status, headers, body = request(
        platform.gateway, "POST", "/api/v1/orchestrate", {"workflow_id": workflow["id"], "priority": 11}
    )
    assert_error(status, headers, body, 400, "priority")


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/api/v1/workflows/not-a-uuid", 400),
        (f"/api/v1/workflows/{uuid.uuid4()}", 404),
        (f"/api/v1/executions/{uuid.uuid4()}", 404),
        ("/api/v1/executions/nope", 400),
        (f"/api/v1/tasks/{uuid.uuid4()}", 404),
        ("/api/v1/executions?status=sleeping", 400),
    ],
)
def test_lookups_fail_cleanly(platform: Platform, path: str, code: int) -> None:
    status, headers, body = request(platform.gateway, "GET", path)
    assert_error(status, headers, body, code)


def test_unknown_workflow_name_is_404(platform: Platform) -> None:
    status, headers, body = request(
        platform.gateway, "POST", "/api/v1/orchestrate", {"workflow_name": "missing", "workflow_version": "9.9.9"}
    )
    assert_error(status, headers, body, 404, "missing")


def test_execution_moves_through_statuses(platform: Platform) -> None:
    """A raw gRPC agent through Envoy works the two steps; REST shows the run complete with results."""
    import asyncio

    from ossa.orchestrator.v1 import orchestrator_pb2 as pb
    from ossa.orchestrator.v1 import orchestrator_pb2_grpc
    from tests.integration.orchestration import struct, to_dict

    agent = register(platform, capabilities=["summarize", "review"])
    workflow = create_workflow(platform)
    publish(platform, workflow["id"])
    status, _, started = request(platform.gateway, "POST", "/api/v1/orchestrate", {"workflow_id": workflow["id"]})
    assert status == 202

    async def work() -> None:
        async with platform.channel() as channel:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
            call = stub.Work()
            await call.write(pb.WorkRequest(agent_id=agent["id"], slots=1))
            for _ in range(2):
                message = await asyncio.wait_for(call.read(), 15)
                a = message.assignment
                await stub.CompleteTask(
                    pb.CompleteTaskRequest(
                        task_id=a.task_id,
                        fencing_token=a.fencing_token,
                        output=struct({"from": a.step_id, **to_dict(a.input)["upstream"]}),
                    )
                )
            call.cancel()

    asyncio.run(work())
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        _, _, execution = request(platform.gateway, "GET", f"/api/v1/executions/{started['execution_id']}")
        if execution["status"] == "completed":
            break
        time.sleep(0.1)
    assert execution["status"] == "completed", execution
    assert execution["results"]["summarize"] == {"from": "summarize"}
    assert execution["results"]["review"] == {"from": "review", "summarize": {"from": "summarize"}}
