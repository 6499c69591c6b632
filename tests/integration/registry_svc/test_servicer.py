"""The registry over real gRPC on loopback, with real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ossa.registry.v1 import registry_pb2 as pb
from ossa.registry.v1 import registry_pb2_grpc
from ossa_runtime import keys
from ossa_runtime.server import ServiceHost
from ossa_runtime.settings import Settings
from registry_svc.server import SERVICE_NAME, build_server
from tests import auth

pytestmark = pytest.mark.integration
Stub = registry_pb2_grpc.AgentRegistryServiceStub


@pytest.fixture(scope="module")
async def registry(settings: Settings) -> AsyncIterator[tuple[ServiceHost, str]]:
    host, port = await build_server(settings, port=0)
    await host.start()
    yield host, f"127.0.0.1:{port}"
    await host.stop()


@pytest.fixture
async def stub(registry: tuple[ServiceHost, str]) -> AsyncIterator[Stub]:
    async with auth.channel(registry[1]) as channel:
        yield registry_pb2_grpc.AgentRegistryServiceStub(channel)


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    yield client
    await client.aclose()


def unique(prefix: str = "agent") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


async def create(stub: Stub, **fields: object) -> pb.Agent:
    request = pb.CreateAgentRequest(name=unique(), type=pb.AgentType.worker, version="1.0.0")
    for key, value in fields.items():
        if key == "capabilities":
            request.capabilities.extend(value)  # type: ignore[call-overload]
        else:
            setattr(request, key, value)
    reply = await stub.CreateAgent(request)
    return reply.agent


def bad_fields(err: grpc.aio.AioRpcError) -> list[str]:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            detail = error_details_pb2.BadRequest()
            assert status.details[0].Unpack(detail)
            return [v.field for v in detail.field_violations]
    return []


async def test_create_returns_the_stored_agent(stub: Stub, settings: Settings) -> None:
    request = pb.CreateAgentRequest(name=unique(), type=pb.AgentType.critic, version="2.1.0-rc.1")
    request.capabilities.extend(["review", "score"])
    request.config.update({"threshold": 0.8})
    request.metadata.update({"description": "reviews summaries"})
    call = stub.CreateAgent(request)
    agent = (await call).agent
    assert "x-http-code" not in dict(await call.initial_metadata())  # the REST status comes from the route
    assert agent.name == request.name and agent.type == pb.AgentType.critic
    assert agent.status == pb.AgentStatus.idle
    assert list(agent.capabilities) == ["review", "score"]
    assert dict(agent.config) == {"threshold": 0.8}
    assert agent.created_at.ToDatetime() == agent.updated_at.ToDatetime()
    assert agent.HasField("last_heartbeat")
    conn = await asyncpg.connect(settings.database_url)
    try:
        row = await conn.fetchrow("SELECT name, type, status FROM agents WHERE id = $1", agent.id)
    finally:
        await conn.close()
    assert tuple(row) == (request.name, "critic", "idle")


async def test_duplicate_name_is_already_exists(stub: Stub) -> None:
    agent = await create(stub)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(stub, name=agent.name)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert agent.name in (err.value.details() or "")


async def test_invalid_request_names_every_field(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateAgent(pb.CreateAgentRequest(name="", version="one"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(err.value) == ["name", "type", "version"]


async def test_get_list_delete(stub: Stub) -> None:
    judge = await create(stub, type=pb.AgentType.judge)
    got = (await stub.GetAgent(pb.GetAgentRequest(agent_id=judge.id))).agent
    assert got == judge
    judges = (await stub.ListAgents(pb.ListAgentsRequest(type=pb.AgentType.judge))).agents
    assert judge.id in [a.id for a in judges]
    assert all(a.type == pb.AgentType.judge for a in judges)
    call = stub.DeleteAgent(pb.DeleteAgentRequest(agent_id=judge.id))
    await call
    assert "x-http-code" not in dict(await call.initial_metadata())  # the REST status comes from the route
    for rpc in (
        stub.GetAgent(pb.GetAgentRequest(agent_id=judge.id)),
        stub.DeleteAgent(pb.DeleteAgentRequest(agent_id=judge.id)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await rpc
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_pages_in_creation_order(stub: Stub) -> None:
    made = [await create(stub, type=pb.AgentType.trainer) for _ in range(3)]
    first = (await stub.ListAgents(pb.ListAgentsRequest(type=pb.AgentType.trainer, limit=2))).agents
    rest = (await stub.ListAgents(pb.ListAgentsRequest(type=pb.AgentType.trainer, limit=2, offset=2))).agents
    assert [a.id for a in [*first, *rest]] == [a.id for a in made]


async def test_bad_ids_are_invalid_not_internal(stub: Stub) -> None:
    for raw in ("nope", "", "1234"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetAgent(pb.GetAgentRequest(agent_id=raw))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad_fields(err.value) == ["agent_id"]


async def test_create_publishes_to_redis(stub: Stub, redis: aioredis.Redis) -> None:
    agent = await create(stub, capabilities=["a"])
    assert await redis.sismember(keys.AGENTS_REGISTRY, agent.id)
    assert (await redis.hgetall(keys.agent_info(agent.id)))["name"] == agent.name
    assert await redis.get(keys.agent_status(agent.id)) == "idle"
    await stub.DeleteAgent(pb.DeleteAgentRequest(agent_id=agent.id))
    assert not await redis.sismember(keys.AGENTS_REGISTRY, agent.id)
    assert not await redis.exists(keys.agent_info(agent.id), keys.agent_status(agent.id))


async def beat_once(stub: Stub, agent_id: str, **fields: object) -> pb.HeartbeatResponse:
    call = stub.Heartbeat()
    await call.write(pb.HeartbeatRequest(agent_id=agent_id, **fields))  # type: ignore[arg-type]
    reply = await call.read()
    await call.done_writing()
    assert isinstance(reply, pb.HeartbeatResponse)
    return reply


async def test_heartbeat_updates_redis_then_postgres(stub: Stub, redis: aioredis.Redis, settings: Settings) -> None:
    agent = await create(stub)
    before = datetime.now(UTC)
    reply = await beat_once(stub, agent.id, status=pb.AgentStatus.busy, load=0.75)
    assert reply.ttl_seconds == 60 and reply.agent_id == agent.id
    assert await redis.get(keys.agent_status(agent.id)) == "busy"
    ttl = await redis.ttl(keys.agent_heartbeat(agent.id))
    assert 0 < ttl <= 60
    assert (await redis.hget(keys.agent_info(agent.id), "load")) == "0.75"
    conn = await asyncpg.connect(settings.database_url)
    try:
        for _ in range(50):
            row = await conn.fetchrow("SELECT status, last_heartbeat FROM agents WHERE id = $1", agent.id)
            if row["status"] == "busy":
                break
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    assert row["status"] == "busy"
    assert row["last_heartbeat"] >= before


async def test_heartbeats_stream_many_acks(stub: Stub) -> None:
    agent = await create(stub)
    call = stub.Heartbeat()
    for i in range(5):
        await call.write(pb.HeartbeatRequest(agent_id=agent.id, load=i / 10))
        reply = await call.read()
        assert isinstance(reply, pb.HeartbeatResponse) and reply.agent_id == agent.id
    await call.done_writing()
    assert await call.code() == grpc.StatusCode.OK


async def test_heartbeat_for_unknown_or_deleted_agent_is_not_found(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await beat_once(stub, "00000000-0000-4000-8000-000000000000")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    agent = await create(stub)
    call = stub.Heartbeat()
    await call.write(pb.HeartbeatRequest(agent_id=agent.id))
    assert isinstance(await call.read(), pb.HeartbeatResponse)
    await stub.DeleteAgent(pb.DeleteAgentRequest(agent_id=agent.id))
    await call.write(pb.HeartbeatRequest(agent_id=agent.id))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert agent.id in (err.value.details() or "")


async def test_heartbeat_heals_after_redis_flush(stub: Stub, redis: aioredis.Redis) -> None:
    agent = await create(stub)
    await redis.flushdb()
    reply = await beat_once(stub, agent.id)
    assert reply.agent_id == agent.id
    assert await redis.sismember(keys.AGENTS_REGISTRY, agent.id)


async def test_silent_agent_goes_offline(settings: Settings, redis: aioredis.Redis) -> None:
    fast = settings.replace(offline_after_seconds=1)
    host, port = await build_server(fast, port=0)
    await host.start()
    try:
        async with auth.channel(f"127.0.0.1:{port}") as channel:
            stub = registry_pb2_grpc.AgentRegistryServiceStub(channel)
            agent = await create(stub)
            status = pb.AgentStatus.idle
            for _ in range(60):
                status = (await stub.GetAgent(pb.GetAgentRequest(agent_id=agent.id))).agent.status
                if status == pb.AgentStatus.offline:
                    break
                await asyncio.sleep(0.1)
            assert status == pb.AgentStatus.offline
            assert await redis.get(keys.agent_status(agent.id)) == "offline"
            await beat_once(stub, agent.id)  # a beat brings it back
            await asyncio.sleep(0.3)
            assert (await stub.GetAgent(pb.GetAgentRequest(agent_id=agent.id))).agent.status == pb.AgentStatus.idle
    finally:
        await host.stop()


async def test_health_and_reflection_are_registered(registry: tuple[ServiceHost, str]) -> None:
    async with grpc.aio.insecure_channel(registry[1]) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE_NAME):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
