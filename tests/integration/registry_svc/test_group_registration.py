"""Concurrent registrations share INSERTs and Redis pipelines (registry_svc.groups) and each caller
still gets its own outcome: real gRPC, PostgreSQL and Redis. Rows inserted by one statement share
their `created_at` (the transaction's time): fewer distinct times than rows shows the grouping."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis

from ossa.registry.v1 import registry_pb2 as pb
from ossa.registry.v1 import registry_pb2_grpc
from ossa_runtime import keys
from ossa_runtime.server import ServiceHost
from ossa_runtime.settings import Settings
from registry_svc.server import build_server
from tests import auth

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def registry(settings: Settings) -> AsyncIterator[tuple[ServiceHost, str]]:
    host, port = await build_server(settings, port=0)
    await host.start()
    yield host, f"127.0.0.1:{port}"
    await host.stop()


def skills(name: str) -> list[str]:
    """Each agent's own capabilities (more than one character: a string read as a list shows)."""
    return [f"skill-{name}"]


async def register(
    stub: registry_pb2_grpc.AgentRegistryServiceStub, name: str, capabilities: list[str] | None = None
) -> pb.Agent | grpc.StatusCode:
    capabilities = skills(name) if capabilities is None else capabilities
    request = pb.CreateAgentRequest(name=name, type=pb.AgentType.worker, version="1.0.0", capabilities=capabilities)
    request.metadata.update({"description": f"agent {name}"})
    try:
        return (await stub.CreateAgent(request)).agent
    except grpc.aio.AioRpcError as err:
        assert "already exists" in (err.details() or "") and repr(name) in (err.details() or "")
        return err.code()


async def test_a_burst_shares_inserts_and_each_caller_gets_its_own_outcome(
    registry: tuple[ServiceHost, str], settings: Settings
) -> None:
    _, address = registry
    tag = secrets.token_hex(4)
    taken = f"taken-{tag}"
    twice = f"twice-{tag}"
    fresh = [f"fresh-{tag}-{i}" for i in range(60)]
    async with auth.channel(address) as channel:
        stub = registry_pb2_grpc.AgentRegistryServiceStub(channel)
        assert isinstance(await register(stub, taken), pb.Agent)
        outcomes = await asyncio.gather(*(register(stub, n) for n in [*fresh, taken, twice, twice, *fresh[:5]]))
    created = [o for o in outcomes if isinstance(o, pb.Agent)]
    refused = [o for o in outcomes if not isinstance(o, pb.Agent)]
    assert sorted(a.name for a in created) == sorted([*fresh, twice])  # one of the two `twice` wins
    assert refused == [grpc.StatusCode.ALREADY_EXISTS] * 7  # `taken`, the other `twice`, 5 repeats
    assert all(a.metadata["description"] == f"agent {a.name}" for a in created)
    assert all(list(a.capabilities) == skills(a.name) for a in created)

    rows = await agent_rows(settings, f"%-{tag}%")
    assert all(json.loads(r["capabilities"]) == skills(r["name"]) for r in rows)  # stored as a list
    assert {r["name"]: r["id"] for r in rows} == {**{a.name: a.id for a in created}, taken: rows_id(rows, taken)}
    assert len({r["created_at"] for r in rows}) < len(rows) - 1  # concurrent registrations shared INSERTs
    redis = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        for agent in created:  # published to Redis before the reply
            assert await redis.sismember(keys.AGENTS_REGISTRY, agent.id)
            assert await redis.hget(keys.agent_info(agent.id), "name") == agent.name
    finally:
        await redis.aclose()


async def agent_rows(settings: Settings, name_like: str) -> list[asyncpg.Record]:
    """The agents stored in PostgreSQL whose name is LIKE `name_like` (capabilities as JSON text)."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT id::text AS id, name, created_at, capabilities FROM agents WHERE name LIKE $1", name_like
        )
        return rows
    finally:
        await conn.close()


def rows_id(rows: list[asyncpg.Record], name: str) -> str:
    return str(next(r["id"] for r in rows if r["name"] == name))


@pytest.mark.parametrize("count", [1, 2, 3])
async def test_each_agent_of_a_burst_keeps_its_own_capabilities(
    registry: tuple[ServiceHost, str], settings: Settings, count: int
) -> None:
    """One INSERT for many agents with `count` capabilities each: every agent gets its own list back,
    from the reply, from GetAgent and in PostgreSQL (a list of lists once went in as one 2-D array)."""
    _, address = registry
    tag = secrets.token_hex(4)
    wanted = {f"caps{count}-{tag}-{i}": [f"c{j}-{tag}-{i}" for j in range(count)] for i in range(40)}
    async with auth.channel(address) as channel:
        stub = registry_pb2_grpc.AgentRegistryServiceStub(channel)
        created = await asyncio.gather(*(register(stub, name, caps) for name, caps in wanted.items()))
        assert all(isinstance(a, pb.Agent) and list(a.capabilities) == wanted[a.name] for a in created)
        for agent in created[:5]:
            assert isinstance(agent, pb.Agent)
            again = (await stub.GetAgent(pb.GetAgentRequest(agent_id=agent.id))).agent
            assert list(again.capabilities) == wanted[agent.name]
    rows = await agent_rows(settings, f"caps{count}-{tag}-%")
    assert {r["name"]: json.loads(r["capabilities"]) for r in rows} == wanted
    assert len({r["created_at"] for r in rows}) < len(rows)  # the burst shared INSERTs
