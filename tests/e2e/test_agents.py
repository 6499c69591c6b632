"""Real agent processes (`ossa agent serve`) through Envoy: the orchestrator's promises, end to end."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.e2e.agents import agents, run_workflow, start_execution, task, tasks, wait_execution, wait_task
from tests.e2e.platform import Platform, make_platform

pytestmark = pytest.mark.e2e


def test_three_step_dag_completes_with_the_right_results(platform: Platform, tmp_path: Path) -> None:
    steps = [
        {"id": "extract", "capability": "e2e.echo", "input": {"doc": "d"}},
        {"id": "summarize", "capability": "e2e.echo", "depends_on": ["extract"]},
        {"id": "publish", "capability": "e2e.echo", "depends_on": ["extract", "summarize"]},
    ]
    with agents(platform, tmp_path, ("e2e.echo", "echo", 2), ("e2e.echo", "echo", 2)):
        _, execution_id = run_workflow(platform, steps, context={"run": 1})
        execution = wait_execution(platform, execution_id, "completed", "failed")
    assert execution["status"] == "completed", execution
    results = execution["results"]
    assert results["extract"] == {"params": {"doc": "d"}, "context": {"run": 1}, "upstream": {}}
    assert results["summarize"]["upstream"] == {"extract": results["extract"]}
    assert results["publish"]["upstream"] == {"extract": results["extract"], "summarize": results["summarize"]}


def test_priorities_are_served_in_order(platform: Platform, tmp_path: Path) -> None:
    workflow_id, first = run_workflow(
        platform, [{"id": "only", "capability": "e2e.prio", "input": {"seconds": 0.05}}], priority=2
    )
    queued = {first: 2}
    for priority in (9, 5, 10, 1):
        queued[start_execution(platform, workflow_id, priority=priority)] = priority
    with agents(platform, tmp_path, ("e2e.prio", "sleep", 1)):
        for execution_id in queued:
            wait_execution(platform, execution_id, "completed")
    started = sorted(queued, key=lambda e: tasks(platform, e)[0]["started_at"])
    assert [queued[e] for e in started] == [10, 9, 5, 2, 1]


def test_cancel_stops_the_agents(platform: Platform, tmp_path: Path) -> None:
    with agents(platform, tmp_path, ("e2e.cancel", "sleep", 1)) as (agent,):
        workflow_id, execution_id = run_workflow(
            platform, [{"id": "long", "capability": "e2e.cancel", "input": {"seconds": 60}}]
        )
        wait_task(platform, execution_id, lambda t: t["status"] in ("assigned", "running"))
        from tests.e2e.platform import request

        status, _, cancelled = request(platform.gateway, "POST", f"/api/v1/executions/{execution_id}/cancel", {})
        assert status == 200 and cancelled["status"] == "cancelled"
        # the agent stopped the 60 s task: its only slot is free again at once
        quick = start_execution(platform, workflow_id)
        started = time.monotonic()
        assert tasks(platform, quick)  # queued
        wait_task(platform, quick, lambda t: t["status"] in ("assigned", "running"), seconds=15)
        assert time.monotonic() - started < 15
        assert "cancel" in agent.tail().lower(), agent.tail()
    [t] = tasks(platform, execution_id)
    assert t["status"] == "failed" and "cancelled" in t["error"]


LEASED = {"id": "slow", "capability": "e2e.lease", "input": {"seconds": 4}, "lease_seconds": 2, "timeout_seconds": 60}


def test_killed_agent_loses_its_lease_to_another(platform: Platform, tmp_path: Path) -> None:
    with agents(platform, tmp_path, ("e2e.lease", "sleep", 1)) as (doomed,):
        _, execution_id = run_workflow(platform, [LEASED])
        wait_task(platform, execution_id, lambda t: t["status"] in ("assigned", "running"))
        doomed.signal(signal.SIGKILL)
        with agents(platform, tmp_path, ("e2e.lease", "sleep", 1)):
            execution = wait_execution(platform, execution_id, "completed", "failed", seconds=60)
    assert execution["status"] == "completed", execution
    [t] = tasks(platform, execution_id)
    attempts = task(platform, t["id"])["attempts"]
    assert [a["outcome"] for a in attempts] == ["expired", "completed"]
    assert attempts[0]["agent_id"] != attempts[1]["agent_id"]


def test_zombie_agents_late_result_is_rejected(platform: Platform, tmp_path: Path) -> None:
    with agents(platform, tmp_path, ("e2e.zombie", "sleep", 1)) as (zombie,):
        _, execution_id = run_workflow(platform, [{**LEASED, "capability": "e2e.zombie"}])
        wait_task(platform, execution_id, lambda t: t["status"] in ("assigned", "running"))
        zombie.signal(signal.SIGSTOP)  # hung: stops renewing
        with agents(platform, tmp_path, ("e2e.zombie", "sleep", 1)):
            execution = wait_execution(platform, execution_id, "completed", seconds=60)
            zombie.signal(signal.SIGCONT)  # wakes up, finishes its copy and reports it: too late
            [t] = tasks(platform, execution_id)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                attempts = task(platform, t["id"])["attempts"]
                if attempts[0]["late_results"] >= 1:
                    break
                time.sleep(0.2)
    assert attempts[0]["outcome"] == "expired" and attempts[0]["late_results"] >= 1, attempts
    assert execution["results"]["slow"]["params"] == {"seconds": 4}
    final = task(platform, t["id"])["attempts"]
    assert final[-1]["outcome"] == "completed", final


def test_retries_exhaust_into_a_failed_execution(platform: Platform, tmp_path: Path) -> None:
    with agents(platform, tmp_path, ("e2e.fail", "fail", 1)):
        _, execution_id = run_workflow(
            platform, [{"id": "doomed", "capability": "e2e.fail", "max_retries": 2, "input": {"message": "nope"}}]
        )
        execution = wait_execution(platform, execution_id, "failed", "completed")
    assert execution["status"] == "failed" and "doomed" in execution["error"] and "nope" in execution["error"]
    assert execution["retry_count"] == 2
    [t] = tasks(platform, execution_id)
    assert t["attempt"] == 3 and t["status"] == "failed"


def test_redis_flushed_mid_run_still_completes(platform: Platform, tmp_path: Path) -> None:
    steps = [
        {"id": "one", "capability": "e2e.flush", "input": {"seconds": 0.3}},
        {"id": "two", "capability": "e2e.flush", "depends_on": ["one"], "input": {"seconds": 0.3}},
    ]
    with agents(platform, tmp_path, ("e2e.flush", "sleep", 2)):
        workflow_id, first = run_workflow(platform, steps)
        executions = [first] + [start_execution(platform, workflow_id) for _ in range(4)]
        wait_task(platform, first, lambda t: t["status"] in ("assigned", "running", "completed"))
        client = redis.Redis(port=platform.port("redis"))
        try:
            client.flushall()
        finally:
            client.close()
        for execution_id in executions:
            assert wait_execution(platform, execution_id, "completed", "failed", seconds=90)["status"] == "completed"


@pytest.fixture(scope="module")
def two_orchestrators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    p = make_platform(tmp_path_factory.mktemp("two") / "data")
    p.start("--orchestrators", "2")
    yield p
    assert p.stop() == 0, p.log_tail()


def test_two_orchestrators_never_double_assign(two_orchestrators: Platform, tmp_path: Path) -> None:
    p = two_orchestrators
    specs = [("e2e.many", "echo", 4)] * 3
    with agents(p, tmp_path, *specs):
        workflow_id, first = run_workflow(p, [{"id": "unit", "capability": "e2e.many"}])
        executions = [first] + [start_execution(p, workflow_id) for _ in range(79)]
        for execution_id in executions:
            assert wait_execution(p, execution_id, "completed", "failed")["status"] == "completed"
    for execution_id in executions:
        [t] = tasks(p, execution_id)
        assert t["attempt"] == 1, t
