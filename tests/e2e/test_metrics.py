"""Prometheus /metrics of the platform `ossa up` runs: REST calls move the counters, gauges are true,
promtool accepts every endpoint; with several workers, one endpoint sums them all."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator

import grpc
import pytest
import redis

from ossa.registry.v1 import registry_pb2 as rpb
from ossa.registry.v1 import registry_pb2_grpc
from ossa_runtime import keys
from ossa_runtime.topology import MONITORING
from tests.e2e.platform import Platform, make_platform, request
from tests.e2e.test_rest_agents import register
from tests.e2e.test_rest_orchestration import create_workflow, publish
from tests.prom import Samples, delta, parse, promtool_check, scrape_sync, value

pytestmark = pytest.mark.e2e

REG = "/ossa.registry.v1.AgentRegistryService/"
ORCH = "/ossa.orchestrator.v1.OrchestratorService/"


def metrics(platform: Platform, service: str) -> Samples:
    return parse(scrape_sync(platform.port(f"{service}_metrics")))


def live_agents(platform: Platform) -> int:
    """Counted straight from Redis: heartbeat key present and status not offline."""
    client = redis.Redis(port=platform.port("redis"), decode_responses=True)
    try:
        ids = [str(a) for a in client.smembers(keys.AGENTS_REGISTRY)]  # type: ignore[union-attr]
        values = client.mget([k for a in ids for k in (keys.agent_heartbeat(a), keys.agent_status(a))]) if ids else []
        return sum(1 for beat, status in zip(values[::2], values[1::2], strict=True) if beat and status != "offline")
    finally:
        client.close()


def test_rest_calls_move_the_counters_with_the_right_labels(platform: Platform) -> None:
    before = {name: metrics(platform, name) for name in ("registry", "gateway")}
    register(platform, name=f"metrics-{secrets.token_hex(4)}")
    status, _, _ = request(platform.gateway, "GET", f"/api/v1/agents/{uuid.uuid4()}")
    assert status == 404
    status, _, _ = request(platform.gateway, "GET", "/api/v1/agents/not-a-uuid")
    assert status == 400
    status, _, _ = request(platform.gateway, "GET", "/api/v1/health")
    assert status == 200
    registry = metrics(platform, "registry")
    old = before["registry"]
    create = {"service": "registry", "method": REG + "CreateAgent"}
    get = {"service": "registry", "method": REG + "GetAgent"}
    assert delta(old, registry, "ossa_requests_total", status="OK", **create) == 1
    assert delta(old, registry, "ossa_request_duration_seconds_count", status="OK", **create) == 1
    assert delta(old, registry, "ossa_errors_total", **create) == 0
    assert delta(old, registry, "ossa_requests_total", status="NOT_FOUND", **get) == 1
    assert delta(old, registry, "ossa_errors_total", status="NOT_FOUND", **get) == 1
    assert delta(old, registry, "ossa_errors_total", status="INVALID_ARGUMENT", **get) == 1
    assert delta(old, registry, "ossa_db_query_duration_seconds_count", service="registry", operation="insert") >= 1
    health = {"service": "gateway", "method": "/ossa.gateway.v1.GatewayService/GetHealth", "status": "OK"}
    assert delta(before["gateway"], metrics(platform, "gateway"), "ossa_requests_total", **health) >= 1


def test_agents_active_equals_the_live_agents(platform: Platform) -> None:
    register(platform, name=f"metrics-{secrets.token_hex(4)}")
    for _ in range(5):  # an agent's heartbeat may expire between the two reads: read again
        expected = live_agents(platform)
        if value(metrics(platform, "registry"), "ossa_agents_active") == expected:
            break
    assert value(metrics(platform, "registry"), "ossa_agents_active") == expected >= 1


def test_queue_size_and_running_workflows_follow_the_executions(platform: Platform) -> None:
    capability = f"nobody-{secrets.token_hex(3)}"
    steps = [{"id": "only", "capability": capability}]
    workflow = create_workflow(platform, definition={"steps": steps})
    publish(platform, workflow["id"])
    before = metrics(platform, "orchestrator")
    started = []
    for _ in range(2):
        status, _, reply = request(platform.gateway, "POST", "/api/v1/orchestrate", {"workflow_id": workflow["id"]})
        assert status == 202, reply
        started.append(reply["execution_id"])
    queued = metrics(platform, "orchestrator")
    assert delta(before, queued, "ossa_queue_size") == 2  # nobody serves the capability: they wait
    assert delta(before, queued, "ossa_workflows_running") == 2
    assert delta(before, queued, "ossa_requests_total", service="orchestrator", method=ORCH + "StartExecution") == 2
    for execution_id in started:
        status, _, _ = request(platform.gateway, "POST", f"/api/v1/executions/{execution_id}/cancel", {})
        assert status == 200
    after = metrics(platform, "orchestrator")
    assert delta(before, after, "ossa_queue_size") == 0
    assert delta(before, after, "ossa_workflows_running") == 0
    assert delta(before, after, "ossa_workflow_completion_time_count", status="cancelled") == 2
    assert delta(before, after, "ossa_tasks_completed_total", capability=capability, outcome="failed") == 2


def test_promtool_accepts_every_endpoint(platform: Platform) -> None:
    services = ["gateway", "registry", "orchestrator"] + (["monitoring"] if MONITORING.installed() else [])
    for service in services:
        promtool_check("metrics", stdin=scrape_sync(platform.port(f"{service}_metrics")))
    status, _, body = request(f"127.0.0.1:{platform.port('envoy_admin')}", "GET", "/stats/prometheus")
    assert status == 200 and "envoy_" in str(body)


# Several workers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workers_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    p = make_platform(tmp_path_factory.mktemp("workers") / "data")
    p.start("--registry-workers", "2", "--orchestrators", "2")
    yield p
    assert p.stop() == 0, p.log_tail()


def test_several_workers_are_one_target_with_their_sum(workers_platform: Platform) -> None:
    p = workers_platform
    before = metrics(p, "registry")
    calls = 24
    for _ in range(calls):  # a new connection each time: SO_REUSEPORT spreads them over the workers
        with grpc.insecure_channel(p.registry, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            with pytest.raises(grpc.RpcError) as err:
                registry_pb2_grpc.AgentRegistryServiceStub(channel).GetAgent(
                    rpb.GetAgentRequest(agent_id=str(uuid.uuid4())),
                    timeout=10,
                    metadata=(("authorization", f"Bearer {p.admin_token}"),),
                )
            assert err.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    after = metrics(p, "registry")
    get = {"service": "registry", "method": REG + "GetAgent", "status": "NOT_FOUND"}
    assert delta(before, after, "ossa_requests_total", **get) == calls
    assert delta(before, after, "ossa_errors_total", **get) == calls
    assert "process_cpu_seconds_total" not in scrape_sync(p.port("registry_metrics"))
    files = list((p.data_dir / "metrics" / "registry").glob("counter_*.db"))
    assert len(files) == 2, files  # both workers counted, into the directory worker 0 reads
    assert value(after, "ossa_agents_active") == live_agents(p)
    orchestrator = metrics(p, "orchestrator")
    assert value(orchestrator, "ossa_queue_size") >= 0 and value(orchestrator, "ossa_workflows_running") >= 0
    promtool_check("metrics", stdin=scrape_sync(p.port("orchestrator_metrics")))


def test_a_restart_starts_from_a_fresh_directory(workers_platform: Platform) -> None:
    p = workers_platform
    directory = p.data_dir / "metrics" / "registry"
    assert p.stop() == 0, p.log_tail()
    (directory / "counter_999999.db").write_bytes(b"left over by a crashed run")
    p.start("--registry-workers", "2", "--orchestrators", "2")
    assert not (directory / "counter_999999.db").exists()
    get = {"service": "registry", "method": REG + "GetAgent", "status": "NOT_FOUND"}
    assert value(metrics(p, "registry"), "ossa_requests_total", **get) == 0  # counts of the last run are gone
