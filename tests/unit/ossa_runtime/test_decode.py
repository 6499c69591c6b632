"""ossa_runtime.decode: requests protobuf cannot decode are INVALID_ARGUMENT naming the field, for
every kind of handler, on a real grpc.aio server with the platform's interceptor chain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ossa.monitoring.v1 import monitoring_pb2, monitoring_pb2_grpc
from ossa.orchestrator.v1 import orchestrator_pb2
from ossa.registry.v1 import registry_pb2, registry_pb2_grpc
from ossa_runtime import decode, limits
from ossa_runtime.server import ServiceHost
from tests.protowire import deep_struct, field, spoil


def diagnosed(message_type: Any, data: bytes) -> tuple[str, str]:
    with pytest.raises(Exception) as err:
        message_type.FromString(data)
    found = decode.diagnose(message_type.DESCRIPTOR, data, str(err.value))
    (violation,) = found.violations
    return violation.field, violation.description


def test_invalid_utf8_is_named_by_field_and_index() -> None:
    request = registry_pb2.CreateAgentRequest(name="n", capabilities=["ok", "SPOILED"])
    assert diagnosed(registry_pb2.CreateAgentRequest, spoil(request, "SPOILED")) == (
        "capabilities[1]",
        "is not valid UTF-8",
    )
    request = registry_pb2.CreateAgentRequest(name="SPOILED")
    assert diagnosed(registry_pb2.CreateAgentRequest, spoil(request, "SPOILED"))[0] == "name"


def test_inside_a_json_document_or_a_map_the_holding_field_is_named() -> None:
    request = registry_pb2.CreateAgentRequest(name="n")
    request.metadata.update({"k": [{"x": "SPOILED"}]})
    assert diagnosed(registry_pb2.CreateAgentRequest, spoil(request, "SPOILED"))[0] == "metadata"
    points = monitoring_pb2.IngestMetricsRequest(
        metrics=[monitoring_pb2.MetricPoint(name="a"), monitoring_pb2.MetricPoint(name="b", labels={"h": "SPOILED"})]
    )
    assert diagnosed(monitoring_pb2.IngestMetricsRequest, spoil(points, "SPOILED"))[0] == "metrics[1].labels"


def test_too_deep_names_the_document() -> None:
    data = orchestrator_pb2.StartExecutionsRequest(
        executions=[orchestrator_pb2.StartExecutionRequest(workflow_id="w")] * 2
    ).SerializeToString()
    data += field(1, field(4, deep_struct(60)))  # a third execution whose context is 60 levels deep
    assert diagnosed(orchestrator_pb2.StartExecutionsRequest, data) == (
        "executions[2].context",
        f"must nest at most {limits.JSON_MAX_DEPTH} levels deep",
    )


def test_thousands_of_levels_are_walked_without_recursing_that_deep() -> None:
    data = field(5, deep_struct(2_000))  # CreateAgentRequest.config, 2,000 levels
    assert diagnosed(registry_pb2.CreateAgentRequest, data)[0] == "config"


@pytest.mark.parametrize("data", [b"\xff\xff\xff", field(1, b"abc")[:-1], b"\x0b"])
def test_corrupt_bytes(data: bytes) -> None:
    name, description = diagnosed(registry_pb2.CreateAgentRequest, data)
    assert name == "request"
    assert description == "is not a valid ossa.registry.v1.CreateAgentRequest: corrupt protobuf wire format"


def test_the_walk_has_a_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode, "WALK_BUDGET", 10)
    request = registry_pb2.CreateAgentRequest(capabilities=[f"c{i}" for i in range(50)] + ["SPOILED"])
    name, description = diagnosed(registry_pb2.CreateAgentRequest, spoil(request, "SPOILED"))
    assert name == "request" and description.startswith("cannot be decoded as ossa.registry.v1.CreateAgentRequest")


# On a server ----------------------------------------------------------------------------------


class Registry(registry_pb2_grpc.AgentRegistryServiceServicer):
    def __init__(self) -> None:
        self.created: list[str] = []
        self.beats: list[str] = []

    async def CreateAgent(self, request: Any, context: Any) -> Any:
        self.created.append(request.name)
        return registry_pb2.CreateAgentResponse()

    async def Heartbeat(self, request_iterator: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        async for beat in request_iterator:
            self.beats.append(beat.agent_id)
            yield registry_pb2.HeartbeatResponse()


class Monitoring(monitoring_pb2_grpc.MonitoringServiceServicer):
    def __init__(self) -> None:
        self.points = 0

    async def PushMetrics(self, request_iterator: AsyncIterator[Any], context: Any) -> Any:
        async for request in request_iterator:
            self.points += len(request.metrics)
        return monitoring_pb2.PushMetricsResponse()


@pytest.fixture
async def served() -> AsyncIterator[tuple[grpc.aio.Channel, Registry, Monitoring]]:
    host = ServiceHost("decode-test", grace_seconds=0.1)
    registry, monitoring = Registry(), Monitoring()
    host.add_service(
        "ossa.registry.v1.AgentRegistryService", registry_pb2_grpc.add_AgentRegistryServiceServicer_to_server, registry
    )
    host.add_service(
        "ossa.monitoring.v1.MonitoringService", monitoring_pb2_grpc.add_MonitoringServiceServicer_to_server, monitoring
    )
    port = host.bind("127.0.0.1", 0)
    await host.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel, registry, monitoring
    await host.stop()


def assert_invalid(err: pytest.ExceptionInfo[grpc.aio.AioRpcError], field_name: str) -> None:
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert f"invalid request: {field_name}: " in (err.value.details() or ""), err.value.details()


async def test_unary_unary(served: tuple[grpc.aio.Channel, Registry, Monitoring]) -> None:
    channel, registry, _ = served
    create = channel.unary_unary(
        "/ossa.registry.v1.AgentRegistryService/CreateAgent", None, None
    )  # bytes in, bytes out
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(spoil(registry_pb2.CreateAgentRequest(name="SPOILED"), "SPOILED"), timeout=10)
    assert_invalid(err, "name")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(field(6, deep_struct(40)), timeout=10)  # metadata
    assert_invalid(err, "metadata")
    assert registry.created == []  # the servicer never saw them
    await create(registry_pb2.CreateAgentRequest(name="fine").SerializeToString(), timeout=10)
    assert registry.created == ["fine"]


async def test_unary_stream(served: tuple[grpc.aio.Channel, Registry, Monitoring]) -> None:
    channel, _, _ = served
    watch = channel.unary_stream("/grpc.health.v1.Health/Watch", None, None)  # bytes in, bytes out
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in watch(spoil(health_pb2.HealthCheckRequest(service="SPOILED"), "SPOILED"), timeout=10):
            pass
    assert_invalid(err, "service")


async def test_stream_unary(served: tuple[grpc.aio.Channel, Registry, Monitoring]) -> None:
    channel, _, monitoring = served
    push = channel.stream_unary("/ossa.monitoring.v1.MonitoringService/PushMetrics", None, None)  # bytes in, bytes out
    good = monitoring_pb2.PushMetricsRequest(metrics=[monitoring_pb2.MetricPoint(name="a")])
    bad = monitoring_pb2.PushMetricsRequest(metrics=[monitoring_pb2.MetricPoint(name="b", labels={"k": "SPOILED"})])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await push(iter([good.SerializeToString(), spoil(bad, "SPOILED")]), timeout=10)
    assert_invalid(err, "metrics[0].labels")
    assert monitoring.points == 1  # the message before the bad one was read, nothing after


async def test_stream_stream(served: tuple[grpc.aio.Channel, Registry, Monitoring]) -> None:
    channel, registry, _ = served
    beat = channel.stream_stream("/ossa.registry.v1.AgentRegistryService/Heartbeat", None, None)  # bytes in, bytes out
    good = registry_pb2.HeartbeatRequest(agent_id="a1").SerializeToString()
    bad = spoil(registry_pb2.HeartbeatRequest(agent_id="SPOILED"), "SPOILED")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in beat(iter([good, bad]), timeout=10):
            pass
    assert_invalid(err, "agent_id")
    assert registry.beats == ["a1"]


async def test_good_streams_still_flow(served: tuple[grpc.aio.Channel, Registry, Monitoring]) -> None:
    channel, _, _ = served
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[no-untyped-call]
    replies = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = [s.name async for reply in replies for s in reply.list_services_response.service]
    assert "ossa.registry.v1.AgentRegistryService" in names and "grpc.health.v1.Health" in names
