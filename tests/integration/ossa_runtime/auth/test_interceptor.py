"""Authentication and authorization on the real services (real gRPC, PostgreSQL and Redis).

- a role x RPC matrix over every RPC in ossa_runtime.auth.permissions: allowed calls get past
  the auth layer, the others are PERMISSION_DENIED naming the permission
- the bad-token catalogue → UNAUTHENTICATED with a clear message
- a revoked jti → UNAUTHENTICATED, also after Redis lost everything (PostgreSQL remembers)
- agent tokens: heartbeat, lease, renew, complete and fail only as their own agent
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import jwt
import pytest
import redis.asyncio as aioredis
from google.protobuf import descriptor_pool, message_factory

from gateway_http.server import build_server as build_gateway
from monitoring_svc.server import build_server as build_monitoring
from orchestrator_svc.server import build_server as build_orchestrator
from ossa.auth.v1 import auth_pb2  # noqa: F401  (registers the messages in the default pool)
from ossa.gateway.v1 import gateway_pb2  # noqa: F401
from ossa.monitoring.v1 import monitoring_pb2  # noqa: F401
from ossa.orchestrator.v1 import orchestrator_pb2 as opb
from ossa.registry.v1 import registry_pb2 as rpb
from ossa.registry.v1 import registry_pb2_grpc
from ossa.search.v1 import search_pb2  # noqa: F401
from ossa_runtime import keys
from ossa_runtime.auth.permissions import PUBLIC, ROLES, RPC_PERMISSIONS, grants
from ossa_runtime.auth.revocation import RevocationStore
from ossa_runtime.server import ServiceHost
from ossa_runtime.settings import Settings
from registry_svc.server import build_server as build_registry
from search_svc.server import build_server as build_search
from tests import auth
from tests.integration.orchestration import Client, fast, step

pytestmark = pytest.mark.integration
AUTH_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
# Auth-service calls whose own answer may be 401/403 for an empty request (login with no key).
OWN_AUTH_ANSWERS = {"/ossa.auth.v1.AuthService/Login", "/ossa.auth.v1.AuthService/Logout"}
# Where each service runs in this test (a service with RPCs in the table must be listed here).
HOSTED = {
    "ossa.registry.v1.AgentRegistryService": "registry",
    "ossa.orchestrator.v1.OrchestratorService": "orchestrator",
    "ossa.monitoring.v1.MonitoringService": "monitoring",
    "ossa.gateway.v1.GatewayService": "gateway",
    "ossa.auth.v1.AuthService": "gateway",
    "ossa.search.v1.SearchService": "search",
}
# Not started here yet (no server module): its rows are checked by tests/unit/ossa_runtime/auth/test_permissions.py.
NOT_HOSTED: set[str] = set()
MATRIX = sorted(m for m in RPC_PERMISSIONS if m.split("/")[1] in HOSTED)


@dataclass
class Stack:
    settings: Settings
    targets: dict[str, str]  # service full name → address
    hosts: list[ServiceHost]

    def target(self, method: str) -> str:
        return self.targets[method.split("/")[1]]


@pytest.fixture(scope="module")
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    hosts: list[ServiceHost] = []
    registry, registry_port = await build_registry(settings, port=0)
    hosts.append(registry)
    tuned = fast(settings, registry_port)
    orchestrator, orchestrator_port = await build_orchestrator(tuned, port=0)
    hosts.append(orchestrator)
    monitoring, monitoring_port = await build_monitoring(tuned, port=0)
    hosts.append(monitoring)
    search, search_port = await build_search(tuned.replace(qdrant_url=":memory:"), port=0)  # in-process store
    hosts.append(search)
    around = tuned.replace(orchestrator_port=orchestrator_port, monitoring_port=monitoring_port)
    gateway, gateway_port = await build_gateway(around, port=0)
    hosts.append(gateway)
    for host in hosts:
        await host.start()
    ports = {"registry": registry_port, "orchestrator": orchestrator_port}
    ports |= {"monitoring": monitoring_port, "gateway": gateway_port, "search": search_port}
    targets = {service: f"127.0.0.1:{ports[server]}" for service, server in HOSTED.items()}
    yield Stack(tuned, targets, hosts)
    for host in reversed(hosts):
        await host.stop()


@pytest.fixture(scope="module")
async def channels(stack: Stack) -> AsyncIterator[dict[str, grpc.aio.Channel]]:
    """Plain channels (no token interceptor): each call passes its own metadata."""
    out = {target: grpc.aio.insecure_channel(target) for target in set(stack.targets.values())}
    yield out
    for channel in out.values():
        await channel.close(None)


def bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    return () if token is None else (("authorization", f"Bearer {token}"),)


async def invoke(channel: grpc.aio.Channel, method: str, token: str | None) -> tuple[grpc.StatusCode, str]:
    """Call `method` with a default (empty) request; the status and message it ends with."""
    service, name = method[1:].split("/")
    described = descriptor_pool.Default().FindServiceByName(service).methods_by_name[name]
    request_cls = message_factory.GetMessageClass(described.input_type)
    response_cls = message_factory.GetMessageClass(described.output_type)
    codec: dict[str, Any] = {
        "request_serializer": request_cls.SerializeToString,
        "response_deserializer": response_cls.FromString,
    }
    metadata = bearer(token)
    try:
        async with asyncio.timeout(20):
            if described.client_streaming and described.server_streaming:
                call = channel.stream_stream(method, **codec)(metadata=metadata)
                await call.write(request_cls())
                async for _ in call:
                    break
                call.cancel()
            elif described.client_streaming:
                await channel.stream_unary(method, **codec)(iter([request_cls()]), metadata=metadata)
            elif described.server_streaming:
                async for _ in channel.unary_stream(method, **codec)(request_cls(), metadata=metadata):
                    break
            else:
                await channel.unary_unary(method, **codec)(request_cls(), metadata=metadata)
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


# The role x RPC matrix -------------------------------------------------------------------------------


def test_the_matrix_covers_every_service_in_the_table() -> None:
    services = {m.split("/")[1] for m in RPC_PERMISSIONS}
    assert services - NOT_HOSTED == set(HOSTED), "start the new service in `stack` and list it in HOSTED"


@pytest.mark.parametrize("role", [*ROLES, None])
@pytest.mark.parametrize("method", MATRIX)
async def test_role_matrix(stack: Stack, channels: dict[str, grpc.aio.Channel], method: str, role: str | None) -> None:
    permission = RPC_PERMISSIONS[method]
    token = None if role is None else auth.token(role, sub=f"matrix-{role}")  # fresh: Logout may revoke it
    code, message = await invoke(channels[stack.target(method)], method, token)
    assert code != grpc.StatusCode.UNIMPLEMENTED, f"{method} is not served where the test expects it"
    allowed = permission == PUBLIC or (role is not None and grants(ROLES[role], permission))
    if allowed:
        if method in OWN_AUTH_ANSWERS:  # the service's own answer, not the auth layer's
            assert "bearer token" not in message and "requires" not in message, (code, message)
        else:
            assert code not in AUTH_CODES, f"{role} was refused {method}: {code} {message}"
    elif role is None:
        assert code == grpc.StatusCode.UNAUTHENTICATED, (code, message)
        assert "missing bearer token" in message
    else:
        assert code == grpc.StatusCode.PERMISSION_DENIED, (code, message)
        assert message == f"permission denied: {method} requires {permission}"


async def test_allowed_calls_really_work(stack: Stack) -> None:
    """A viewer reads, an operator writes, an admin deletes (valid requests, real answers)."""
    name = f"matrix-{secrets.token_hex(4)}"
    async with auth.channel(stack.target("/ossa.registry.v1.AgentRegistryService/x"), auth.token("operator")) as ch:
        created = await registry_pb2_grpc.AgentRegistryServiceStub(ch).CreateAgent(
            rpb.CreateAgentRequest(name=name, type=rpb.AgentType.worker, version="1.0.0")
        )
    registry_target = stack.target("/ossa.registry.v1.AgentRegistryService/x")
    async with auth.channel(registry_target, auth.token("viewer")) as ch:
        got = await registry_pb2_grpc.AgentRegistryServiceStub(ch).GetAgent(
            rpb.GetAgentRequest(agent_id=created.agent.id)
        )
        assert got.agent.name == name
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await registry_pb2_grpc.AgentRegistryServiceStub(ch).DeleteAgent(
                rpb.DeleteAgentRequest(agent_id=created.agent.id)
            )
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "agent:delete" in (denied.value.details() or "")
    async with auth.channel(registry_target) as ch:
        await registry_pb2_grpc.AgentRegistryServiceStub(ch).DeleteAgent(
            rpb.DeleteAgentRequest(agent_id=created.agent.id)
        )


async def test_health_and_reflection_need_no_token(stack: Stack, channels: dict[str, grpc.aio.Channel]) -> None:
    for target in set(stack.targets.values()):
        code, _ = await invoke(channels[target], "/grpc.health.v1.Health/Check", None)
        assert code == grpc.StatusCode.OK
    code, _ = await invoke(
        channels[stack.targets["ossa.registry.v1.AgentRegistryService"]],
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        None,
    )
    assert code not in AUTH_CODES


# Bad tokens ---------------------------------------------------------------------------------------------


def forged(**changes: Any) -> str:
    now = int(time.time())
    body: dict[str, Any] = {
        "sub": "mallory", "iss": "ossa", "aud": ["ossa-platform"], "exp": now + 600, "iat": now,
        "jti": secrets.token_hex(8), "scope": ["admin:all"], "type": "user",
    }  # fmt: skip
    body.update(changes)
    for key in [k for k, v in body.items() if v is None]:
        del body[key]
    return jwt.encode(body, auth.TEST_JWT_SECRET, algorithm="HS256")


BAD_TOKENS = {
    "garbage": ("not-a-jwt", "malformed token"),
    "alg none": (jwt.encode({"sub": "x", "scope": ["admin:all"]}, "", algorithm="none"), "algorithm 'none'"),
    "wrong signature": (
        jwt.encode({"sub": "x"}, "some-other-secret-that-is-long-enough-000000", algorithm="HS256"),
        "invalid token signature",
    ),
    "expired": (forged(exp=int(time.time()) - 3600), "token expired at"),
    "not yet valid": (forged(nbf=int(time.time()) + 3600), "not valid yet"),
    "wrong issuer": (forged(iss="evil"), "token issuer 'evil'"),
    "wrong audience": (forged(aud=["elsewhere"]), "does not include 'ossa-platform'"),
    "missing claim": (forged(jti=None), "required claim 'jti'"),
    "unknown type": (forged(type="robot"), "unknown token type"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
@pytest.mark.parametrize(
    "method", ["/ossa.registry.v1.AgentRegistryService/ListAgents", "/ossa.registry.v1.AgentRegistryService/Heartbeat"]
)
async def test_bad_tokens_are_unauthenticated(
    stack: Stack, channels: dict[str, grpc.aio.Channel], method: str, case: str
) -> None:
    token, needle = BAD_TOKENS[case]
    code, message = await invoke(channels[stack.target(method)], method, token)
    assert code == grpc.StatusCode.UNAUTHENTICATED, (code, message)
    assert needle in message


async def test_wrong_scheme_is_unauthenticated(stack: Stack) -> None:
    target = stack.targets["ossa.registry.v1.AgentRegistryService"]
    async with grpc.aio.insecure_channel(target) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await registry_pb2_grpc.AgentRegistryServiceStub(ch).ListAgents(
                rpb.ListAgentsRequest(), metadata=(("authorization", f"Basic {auth.ADMIN_TOKEN}"),)
            )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "Bearer <jwt>" in (err.value.details() or "")


# Revocation -------------------------------------------------------------------------------------------------


@pytest.fixture
async def revocations(stack: Stack) -> AsyncIterator[tuple[RevocationStore, aioredis.Redis]]:
    redis = aioredis.Redis.from_url(stack.settings.redis_url, decode_responses=True)
    pool = await asyncpg.create_pool(stack.settings.database_url, min_size=1, max_size=2)
    yield RevocationStore(redis, pool), redis
    await pool.close()
    await redis.aclose()


async def list_agents(stack: Stack, token: str) -> grpc.StatusCode:
    code, _ = await invoke_registry(stack, token)
    return code


async def invoke_registry(stack: Stack, token: str) -> tuple[grpc.StatusCode, str]:
    target = stack.targets["ossa.registry.v1.AgentRegistryService"]
    async with grpc.aio.insecure_channel(target) as ch:
        return await invoke(ch, "/ossa.registry.v1.AgentRegistryService/ListAgents", token)


async def test_revoked_token_is_unauthenticated(
    stack: Stack, revocations: tuple[RevocationStore, aioredis.Redis]
) -> None:
    store, redis = revocations
    token = auth.token("admin", sub="to-revoke")
    assert await list_agents(stack, token) == grpc.StatusCode.OK
    claims = jwt.decode(token, options={"verify_signature": False})
    await store.revoke(claims["jti"], claims["exp"])
    assert await redis.ttl(keys.token_revoked(claims["jti"])) > 0
    # Each service caches a "not revoked" answer for at most auth_revocation_cache_seconds.
    for _ in range(100):
        code, message = await invoke_registry(stack, token)
        if code != grpc.StatusCode.OK:
            break
        await asyncio.sleep(0.05)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert message == f"token {claims['jti']} has been revoked"


async def test_revocation_survives_a_redis_flush(
    stack: Stack, revocations: tuple[RevocationStore, aioredis.Redis]
) -> None:
    store, redis = revocations
    token = auth.token("admin", sub="revoked-before-flush")  # never used: no service has it cached
    claims = jwt.decode(token, options={"verify_signature": False})
    await store.revoke(claims["jti"], claims["exp"])
    await redis.flushall()  # Redis forgets everything; PostgreSQL still has the revocation
    code, message = await invoke_registry(stack, token)
    assert code == grpc.StatusCode.UNAUTHENTICATED, (code, message)
    assert "has been revoked" in message
    assert await redis.exists(keys.token_revoked(claims["jti"]))  # copied back to Redis
    assert await list_agents(stack, auth.token("viewer")) == grpc.StatusCode.OK  # others unaffected


# Agent tokens act only as their own agent ------------------------------------------------------------------------


def agent_token(sub: str) -> str:
    return auth.token("operator", sub=sub, type="agent")


async def beat(stack: Stack, token: str, agent_id: str) -> tuple[grpc.StatusCode, str]:
    target = stack.targets["ossa.registry.v1.AgentRegistryService"]
    async with auth.channel(target, token) as ch:
        call = registry_pb2_grpc.AgentRegistryServiceStub(ch).Heartbeat()
        try:
            await call.write(rpb.HeartbeatRequest(agent_id=agent_id, status="idle"))
            await call.read()
        except grpc.aio.AioRpcError as err:
            return err.code(), err.details() or ""
        finally:
            call.cancel()
    return grpc.StatusCode.OK, ""


@pytest.fixture
async def two_agents(stack: Stack) -> AsyncIterator[tuple[Client, rpb.Agent, rpb.Agent]]:
    client = Client(stack.targets["ossa.orchestrator.v1.OrchestratorService"], stack.targets[
        "ossa.registry.v1.AgentRegistryService"])  # fmt: skip
    capability = f"cap-{secrets.token_hex(3)}"
    agents = []
    for _ in range(2):
        reply = await client.registry.CreateAgent(
            rpb.CreateAgentRequest(
                name=f"agent-{secrets.token_hex(4)}", type=rpb.AgentType.worker, version="1.0.0",
                capabilities=[capability],
            )
        )  # fmt: skip
        agents.append(reply.agent)
    yield client, agents[0], agents[1]
    await client.close()


async def test_agent_heartbeats_only_as_itself(stack: Stack, two_agents: tuple[Client, rpb.Agent, rpb.Agent]) -> None:
    _, mine, theirs = two_agents
    by_name, by_id = agent_token(mine.name), agent_token(mine.id)
    assert await beat(stack, by_name, mine.id) == (grpc.StatusCode.OK, "")
    assert await beat(stack, by_id, mine.id) == (grpc.StatusCode.OK, "")
    code, message = await beat(stack, by_name, theirs.id)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert message == f"permission denied: agent token for {mine.name!r} cannot act as agent {theirs.name!r}"
    admin_agent = auth.token("admin", sub="any", type="agent")
    assert await beat(stack, admin_agent, theirs.id) == (grpc.StatusCode.OK, "")  # admins act for any agent
    assert await beat(stack, auth.token("operator"), theirs.id) == (grpc.StatusCode.OK, "")  # a user, not an agent


async def test_agent_registers_only_itself(stack: Stack) -> None:
    target = stack.targets["ossa.registry.v1.AgentRegistryService"]
    name = f"self-{secrets.token_hex(4)}"
    async with auth.channel(target, agent_token(name)) as ch:
        stub = registry_pb2_grpc.AgentRegistryServiceStub(ch)
        request = rpb.CreateAgentRequest(name=name, type=rpb.AgentType.worker, version="1.0.0")
        assert (await stub.CreateAgent(request)).agent.name == name
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CreateAgent(rpb.CreateAgentRequest(name=name + "-x", type=rpb.AgentType.worker, version="1.0.0"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_agent_leases_renews_completes_and_fails_only_its_own_tasks(
    stack: Stack, two_agents: tuple[Client, rpb.Agent, rpb.Agent]
) -> None:
    admin, mine, theirs = two_agents
    orchestrator = stack.targets["ossa.orchestrator.v1.OrchestratorService"]
    registry = stack.targets["ossa.registry.v1.AgentRegistryService"]
    as_mine = Client(orchestrator, registry, agent_token(mine.name))
    as_theirs = Client(orchestrator, registry, agent_token(theirs.id))
    try:
        # Work as another agent: refused before anything is leased.
        call = as_mine.orch.Work()
        await call.write(opb.WorkRequest(agent_id=theirs.id, slots=1))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert theirs.name in (err.value.details() or "")

        # `theirs` holds a task (leased through an admin connection); `mine` may not touch it.
        workflow = await admin.published([step("only", theirs.capabilities[0])])
        execution_id = await admin.start(workflow.id)
        async with admin.work(theirs.id) as stream:
            lease = await stream.assignment()
            task_id, token = lease.task_id, lease.fencing_token
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await as_mine.orch.RenewLease(opb.RenewLeaseRequest(task_id=task_id, fencing_token=token))
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await as_mine.orch.CompleteTask(opb.CompleteTaskRequest(task_id=task_id, fencing_token=token))
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await as_mine.orch.FailTask(opb.FailTaskRequest(task_id=task_id, fencing_token=token, error="x"))
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "cannot act as agent" in (denied.value.details() or "")
            # Nothing changed: the task's own agent (its token names it by id) renews and completes it.
            await as_theirs.orch.RenewLease(opb.RenewLeaseRequest(task_id=task_id, fencing_token=token))
            await as_theirs.complete(lease, {"done": True})
        await admin.wait_status(execution_id, "completed")
    finally:
        await as_mine.close()
        await as_theirs.close()
