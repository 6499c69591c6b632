"""/metrics of real services (PostgreSQL, Redis, gRPC, HTTP scrapes): the values are true.

Two orchestrator instances share the database, as several orchestrator processes do: both must
report the same queue. Counters are process-wide here (all services run in this process), so
tests compare before/after differences.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis

from orchestrator_svc.server import build_server as build_orchestrator
from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa.registry.v1 import registry_pb2 as rpb
from ossa_runtime import keys
from ossa_runtime.server import ServiceHost
from ossa_runtime.settings import Settings
from registry_svc.server import build_server as build_registry
from tests.integration.orchestration import Client, fast, step
from tests.prom import Samples, delta, parse, promtool_check, scrape, value

pytestmark = pytest.mark.integration

ORCH = "/ossa.orchestrator.v1.OrchestratorService/"
REG = "/ossa.registry.v1.AgentRegistryService/"


@dataclass
class Stack:
    settings: Settings
    registry: ServiceHost
    orchestrators: list[ServiceHost]
    client: Client
    redis: aioredis.Redis
    pool: asyncpg.Pool

    async def registry_metrics(self) -> Samples:
        assert self.registry.metrics.port is not None
        return parse(await scrape(self.registry.metrics.port))

    async def orchestrator_metrics(self, i: int = 0) -> Samples:
        port = self.orchestrators[i].metrics.port
        assert port is not None
        return parse(await scrape(port))

    async def live_agents(self) -> int:
        """Counted here without the service's code: heartbeat key present, status not offline."""
        live = 0
        for agent_id in map(str, await self.redis.smembers(keys.AGENTS_REGISTRY)):
            beat = await self.redis.exists(keys.agent_heartbeat(agent_id))
            live += bool(beat) and await self.redis.get(keys.agent_status(agent_id)) != "offline"
        return live


@pytest.fixture(scope="module")
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    registry, registry_port = await build_registry(settings, port=0)
    registry.metrics.listen("127.0.0.1", 0)
    await registry.start()
    tuned = fast(settings, registry_port)
    orchestrators = []
    ports = []
    for _ in range(2):
        host, port = await build_orchestrator(tuned, port=0)
        host.metrics.listen("127.0.0.1", 0)
        await host.start()
        orchestrators.append(host)
        ports.append(port)
    client = Client(f"127.0.0.1:{ports[0]}", f"127.0.0.1:{registry_port}")
    redis = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    yield Stack(tuned, registry, orchestrators, client, redis, pool)
    await pool.close()
    await redis.aclose()
    await client.close()
    for host in orchestrators:
        await host.stop()
    await registry.stop()


async def beat(client: Client, agent_id: str) -> None:
    call = client.registry.Heartbeat()
    await call.write(rpb.HeartbeatRequest(agent_id=agent_id, status=rpb.AgentStatus.idle))
    await call.read()
    await call.done_writing()


async def test_agents_active_equals_the_agents_with_a_live_heartbeat(stack: Stack) -> None:
    async def check(expected: int) -> None:
        assert await stack.live_agents() == expected
        assert value(await stack.registry_metrics(), "ossa_agents_active") == expected

    base = await stack.live_agents()
    assert value(await stack.registry_metrics(), "ossa_agents_active") == base
    agents = [await stack.client.agent(["metrics-a"]) for _ in range(4)]
    await check(base + 4)  # registration is the first sign of life
    await stack.redis.pexpire(keys.agent_heartbeat(agents[0]), 50)  # its TTL runs out
    await asyncio.sleep(0.2)
    await check(base + 3)
    await beat(stack.client, agents[0])  # it beats again
    await check(base + 4)
    await stack.redis.set(keys.agent_status(agents[1]), "offline")  # as the offline sweep marks it
    await check(base + 3)
    await stack.client.registry.DeleteAgent(rpb.DeleteAgentRequest(agent_id=agents[2]))
    await check(base + 2)


async def pending_in_db(stack: Stack) -> tuple[int, int]:
    row = await stack.pool.fetchrow(
        """SELECT (SELECT count(*) FROM tasks WHERE status = 'pending') AS queued,
                  (SELECT count(*) FROM executions WHERE status IN ('pending', 'running')) AS running"""
    )
    return row["queued"], row["running"]


async def gauges_everywhere(stack: Stack) -> list[tuple[float, float]]:
    out = []
    for i in range(len(stack.orchestrators)):
        s = await stack.orchestrator_metrics(i)
        out.append((value(s, "ossa_queue_size"), value(s, "ossa_workflows_running")))
    return out


async def test_queue_size_and_running_workflows_are_the_same_from_every_orchestrator(stack: Stack) -> None:
    capability = f"metrics-{secrets.token_hex(3)}"
    workflow = await stack.client.published([step("a", capability), step("b", capability, depends_on=["a"])])
    base_queued, base_running = await pending_in_db(stack)
    assert await gauges_everywhere(stack) == [(base_queued, base_running)] * 2
    before = await stack.orchestrator_metrics()

    executions = [await stack.client.start(workflow.id) for _ in range(3)]
    assert await pending_in_db(stack) == (base_queued + 3, base_running + 3)
    assert await gauges_everywhere(stack) == [(base_queued + 3, base_running + 3)] * 2

    agent = await stack.client.agent([capability])
    async with stack.client.work(agent, slots=3) as stream:
        first = [await stream.assignment() for _ in range(3)]  # claimed: no longer queued
        assert await gauges_everywhere(stack) == [(base_queued, base_running + 3)] * 2
        for assignment in first:
            await stack.client.complete(assignment, {"ok": True})
        second = [await stream.assignment() for _ in range(3)]
        for assignment in second:
            await stack.client.complete(assignment, {"ok": True})
    for execution_id in executions:
        await stack.client.wait_status(execution_id, "completed")
    assert await gauges_everywhere(stack) == [await pending_in_db(stack)] * 2 == [(base_queued, base_running)] * 2

    after = await stack.orchestrator_metrics(1)  # the counters of the whole process, from either endpoint
    assert delta(before, after, "ossa_tasks_completed_total", capability=capability, outcome="completed") == 6
    assert delta(before, after, "ossa_task_duration_seconds_count", capability=capability, outcome="completed") == 6
    assert delta(before, after, "ossa_workflow_completion_time_count", status="completed") == 3
    assert delta(before, after, "ossa_workflow_completion_time_sum", status="completed") > 0
    method = {"service": "orchestrator", "method": ORCH + "StartExecution", "status": "OK"}
    assert delta(before, after, "ossa_requests_total", **method) == 3
    assert delta(before, after, "ossa_request_duration_seconds_count", **method) == 3
    completes = {"service": "orchestrator", "method": ORCH + "CompleteTask", "status": "OK"}
    assert delta(before, after, "ossa_requests_total", **completes) == 6


async def test_failed_and_cancelled_work_is_counted(stack: Stack) -> None:
    capability = f"metrics-{secrets.token_hex(3)}"
    workflow = await stack.client.published([step("a", capability, max_retries=0), step("b", capability)])
    before = await stack.orchestrator_metrics()
    failing = await stack.client.start(workflow.id)
    agent = await stack.client.agent([capability])
    async with stack.client.work(agent, slots=2) as stream:
        claimed = [await stream.assignment() for _ in range(2)]
        doomed = next(a for a in claimed if a.step_id == "a")
        await stack.client.orch.FailTask(
            pb.FailTaskRequest(task_id=doomed.task_id, fencing_token=doomed.fencing_token, error="no", retryable=False)
        )
        await stack.client.wait_status(failing, "failed")
    # Nobody works on it (no agent serves its capability): its tasks stay queued until cancelled.
    idle = await stack.client.published([step("a", capability + "-idle"), step("b", capability + "-idle")])
    cancelled = await stack.client.start(idle.id)
    await stack.client.orch.CancelExecution(pb.CancelExecutionRequest(execution_id=cancelled))
    after = await stack.orchestrator_metrics()

    # a failed (attempt failed), b stopped with its execution (attempt cancelled); both cancelled tasks never ran.
    assert delta(before, after, "ossa_tasks_completed_total", capability=capability, outcome="failed") == 2
    assert delta(before, after, "ossa_tasks_completed_total", capability=capability + "-idle", outcome="failed") == 2
    assert delta(before, after, "ossa_tasks_completed_total", capability=capability, outcome="completed") == 0
    assert delta(before, after, "ossa_task_duration_seconds_count", capability=capability, outcome="failed") == 1
    assert delta(before, after, "ossa_task_duration_seconds_count", capability=capability, outcome="cancelled") == 1
    assert delta(before, after, "ossa_task_duration_seconds_count", capability=capability) == 2
    assert delta(before, after, "ossa_workflow_completion_time_count", status="failed") == 1
    assert delta(before, after, "ossa_workflow_completion_time_count", status="cancelled") == 1
    # Cancelling again is a no-op and is not counted twice.
    await stack.client.orch.CancelExecution(pb.CancelExecutionRequest(execution_id=cancelled))
    again = await stack.orchestrator_metrics()
    assert delta(after, again, "ossa_workflow_completion_time_count", status="cancelled") == 0


async def test_errors_are_counted_by_service_method_and_status(stack: Stack) -> None:
    before = await stack.registry_metrics()
    with pytest.raises(grpc.aio.AioRpcError):
        await stack.client.registry.GetAgent(rpb.GetAgentRequest(agent_id="00000000-0000-4000-8000-000000000000"))
    with pytest.raises(grpc.aio.AioRpcError):
        await stack.client.registry.GetAgent(rpb.GetAgentRequest(agent_id="not-a-uuid"))
    after = await stack.registry_metrics()
    labels = {"service": "registry", "method": REG + "GetAgent"}
    assert delta(before, after, "ossa_errors_total", status="NOT_FOUND", **labels) == 1
    assert delta(before, after, "ossa_errors_total", status="INVALID_ARGUMENT", **labels) == 1
    assert delta(before, after, "ossa_requests_total", **labels) == 2


async def test_every_query_is_timed_by_service_and_operation(stack: Stack) -> None:
    before = await stack.registry_metrics()
    await stack.client.agent(["metrics-db"])
    after = await stack.registry_metrics()
    assert delta(before, after, "ossa_db_query_duration_seconds_count", service="registry", operation="insert") == 1
    s = await stack.orchestrator_metrics()
    for operation in ("select", "insert", "update", "begin", "commit"):
        assert value(s, "ossa_db_query_duration_seconds_count", service="orchestrator", operation=operation) > 0
    assert value(s, "ossa_db_query_duration_seconds_sum", service="orchestrator") > 0


async def test_promtool_accepts_every_endpoint(stack: Stack) -> None:
    hosts = [stack.registry, *stack.orchestrators]
    for host in hosts:
        assert host.metrics.port is not None
        text = await scrape(host.metrics.port)
        promtool_check("metrics", stdin=text)
    registry_text = await scrape(stack.registry.metrics.port or 0)
    assert "# TYPE ossa_agents_active gauge" in registry_text and "ossa_queue_size" not in registry_text
