"""Agent roles through Envoy with `ossa agent serve` agents: review loops (converging, exhausted, a
reviewer dying mid-review), approvals (a person approves or rejects over REST, a timeout, a
governor), budgets, and A2A agent cards. The role x route matrix of the new routes is in
tests/e2e/test_rest_auth.py (every REST route, every role)."""

from __future__ import annotations

import secrets
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.agents import agents, platform_token, run_workflow
from tests.e2e.platform import Platform, request

pytestmark = pytest.mark.e2e
LEASED = ("assigned", "running")


def started(platform: Platform, steps: list[dict[str, Any]], **start: Any) -> str:
    """Publish a workflow of `steps` and start it; the execution's id."""
    return run_workflow(platform, steps, **start)[1]


def execution_of(platform: Platform, execution_id: str) -> dict[str, Any]:
    status, _, execution = request(platform.gateway, "GET", f"/api/v1/executions/{execution_id}")
    assert status == 200, execution
    return execution


def wait_for(platform: Platform, execution_id: str, *statuses: str, seconds: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        execution = execution_of(platform, execution_id)
        if execution["status"] in statuses:
            return execution
        time.sleep(0.1)
    raise AssertionError(f"execution {execution_id} stayed {execution['status']}")


def tasks_of(platform: Platform, execution_id: str) -> dict[str, dict[str, Any]]:
    status, _, tasks = request(platform.gateway, "GET", f"/api/v1/executions/{execution_id}/tasks")
    assert status == 200, tasks
    return {t["name"]: t for t in tasks}


def reviewed(cap: str, **review: Any) -> dict[str, Any]:
    return {"id": "draft", "capability": f"write-{cap}", "input": {"topic": "agents"},
            "review": {"by": f"review-{cap}", "agent_type": "critic", **review}}  # fmt: skip


def test_a_review_loop_converges_and_exhausts(platform: Platform, tmp_path: Path) -> None:
    cap = secrets.token_hex(3)
    with agents(
        platform, tmp_path,
        (f"write-{cap}", "ossa_sdk.roles:draft_writer", 2),
        (f"review-{cap}", "ossa_sdk.roles:length_critic", 2, "critic"),
    ):  # fmt: skip
        converges = started(platform, [reviewed(cap, input={"min_length": 40})])
        exhausts = started(platform, [reviewed(cap, max_rounds=2, input={"min_length": 10_000})])
        done = wait_for(platform, converges, "completed", "failed")
        failed = wait_for(platform, exhausts, "completed", "failed")
    assert done["status"] == "completed", done
    assert done["results"]["draft"]["text"].startswith("On agents: a longer draft")
    tasks = tasks_of(platform, converges)
    assert sorted(tasks) == ["draft~1", "draft~1.review", "draft~2", "draft~2.review"]
    assert tasks["draft~1.review"]["output"]["verdict"] == "reject"
    assert tasks["draft~2"]["input"]["upstream"]["review"]["feedback"]["verdict"] == "reject"
    assert failed["status"] == "failed" and failed["error"] == "step draft: not accepted after 2 review rounds"


def test_a_reviewer_dying_mid_review_loses_its_lease_and_the_review_is_redone(
    platform: Platform, tmp_path: Path
) -> None:
    cap = secrets.token_hex(3)
    step = reviewed(cap, input={"sleep": 60})
    step["lease_seconds"] = 2
    with agents(platform, tmp_path, (f"write-{cap}", "ossa_sdk.roles:draft_writer", 1)):
        with agents(platform, tmp_path, (f"review-{cap}", "tests.e2e.role_handlers:slow_critic", 1, "critic")) as (
            dying,
        ):
            execution_id = started(platform, [step])
            deadline = time.monotonic() + 30
            while tasks_of(platform, execution_id).get("draft~1.review", {}).get("status") not in (
                "assigned",
                "running",
            ):
                assert time.monotonic() < deadline, tasks_of(platform, execution_id)
                time.sleep(0.1)
            dying.signal(signal.SIGKILL)
        with agents(platform, tmp_path, (f"review-{cap}", "ossa_sdk.roles:length_critic", 1, "critic")):
            execution = wait_for(platform, execution_id, "completed", "failed")
    assert execution["status"] == "completed", execution
    review = tasks_of(platform, execution_id)["draft~1.review"]
    status, _, task = request(platform.gateway, "GET", f"/api/v1/tasks/{review['id']}")
    assert status == 200 and [a["outcome"] for a in task["attempts"]] == ["expired", "completed"], task


def gated(cap: str, **approval: Any) -> list[dict[str, Any]]:
    return [{"id": "deploy", "capability": f"deploy-{cap}", "approval": {"by": "human", **approval}}]


def gate_of(platform: Platform, execution_id: str) -> dict[str, Any]:
    wait_for(platform, execution_id, "waiting_approval", seconds=20)
    gate = tasks_of(platform, execution_id)["deploy~approval"]
    assert (gate["status"] == "waiting_approval" and "agent_id" not in gate) or not gate.get("agent_id")
    return gate


def test_a_person_approves_or_rejects_over_rest_and_an_undecided_gate_times_out(
    platform: Platform, tmp_path: Path
) -> None:
    cap = secrets.token_hex(3)
    operator = platform_token(platform, "operator", "e2e-operator")
    with agents(platform, tmp_path, (f"deploy-{cap}", "echo", 1)):
        approved, rejected = started(platform, gated(cap)), started(platform, gated(cap))
        timed_out = started(platform, gated(cap, timeout_seconds=1))
        gate = gate_of(platform, approved)
        status, _, decided = request(
            platform.gateway, "POST", f"/api/v1/tasks/{gate['id']}/approve", {"reason": "window open"}, token=operator
        )
        assert status == 200 and decided["output"] == {"approved": True, "by": "e2e-operator", "reason": "window open"}
        assert wait_for(platform, approved, "completed", "failed")["status"] == "completed"
        gate = gate_of(platform, rejected)
        status, _, _ = request(platform.gateway, "POST", f"/api/v1/tasks/{gate['id']}/reject", {"reason": "freeze"})
        assert status == 200
        assert wait_for(platform, rejected, "failed")["error"].endswith(": freeze")
        again = request(platform.gateway, "POST", f"/api/v1/tasks/{gate['id']}/approve", {})
        assert again[0] == 400 and "not waiting for approval" in again[2]["message"]
        assert wait_for(platform, timed_out, "failed")["error"] == "step deploy: approval timed out after 1 s"


def test_a_governor_agent_decides_over_the_lease_stream(platform: Platform, tmp_path: Path) -> None:
    cap = secrets.token_hex(3)
    steps = [{"id": "deploy", "capability": f"deploy-{cap}",
              "approval": {"by": "governor", "capability": f"approve-{cap}"}}]  # fmt: skip
    with agents(
        platform, tmp_path,
        (f"deploy-{cap}", "echo", 1),
        (f"approve-{cap}", "ossa_sdk.roles:cautious_governor", 1, "governor"),
    ):  # fmt: skip
        low = started(platform, steps, context={"risk": "low"})
        high = started(platform, steps, context={"risk": "high"})
        assert wait_for(platform, low, "completed", "failed")["status"] == "completed"
        refused = wait_for(platform, high, "completed", "failed")
    assert refused["status"] == "failed" and "risk=high" in refused["error"]


def test_a_spent_budget_fails_the_execution(platform: Platform, tmp_path: Path) -> None:
    cap = secrets.token_hex(3)
    steps = [{"id": "a", "capability": f"b-{cap}"}, {"id": "b", "capability": f"b-{cap}", "depends_on": ["a"]}]
    with agents(platform, tmp_path, (f"b-{cap}", "echo", 1)):
        execution_id = started(platform, steps, budget={"max_tasks": 1})
        execution = wait_for(platform, execution_id, "completed", "failed")
    assert execution["status"] == "failed" and execution["error"] == "budget exhausted: max_tasks 1 reached"
    assert execution["budget"] == {"max_tasks": 1, "max_seconds": 0, "max_cost": 0}
    status, _, reply = request(platform.gateway, "POST", "/api/v1/orchestrate",
                               {"workflow_id": execution["workflow_id"], "budget": {"max_cost": -1}})  # fmt: skip
    assert status == 400 and "budget.max_cost" in reply["message"]


def test_agent_cards_through_the_gateway(platform: Platform, tmp_path: Path) -> None:
    cap = secrets.token_hex(3)
    with agents(platform, tmp_path, (f"review-{cap}", "ossa_sdk.roles:length_critic", 1, "critic")) as (critic,):
        deadline = time.monotonic() + 30
        while True:
            status, _, found = request(platform.gateway, "GET", f"/api/v1/agents?name={critic.name}")
            if status == 200 and found:
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        status, _, card = request(platform.gateway, "GET", f"/api/v1/agents/{found[0]['id']}/card")
    assert status == 200, card
    assert card["name"] == critic.name and card["protocolVersion"] == "0.3.0"
    assert [s["id"] for s in card["skills"]] == [f"review-{cap}"] and "critic" in card["skills"][0]["tags"]
    assert card["url"].endswith(f"/api/v1/agents/{found[0]['id']}")
    status, _, platform_card = request(platform.gateway, "GET", "/.well-known/agent-card.json", token="")
    assert status == 200 and platform_card["name"] == "OSSA Platform"
    assert {s["id"] for s in platform_card["skills"]} >= {"OrchestratorService", "AgentRegistryService"}
