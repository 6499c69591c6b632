"""Rate limits with real Redis: one count across two registry processes, 429-style refusals with a
retry hint, and calls that go through (fail open) when Redis is down."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ossa.registry.v1 import registry_pb2 as pb
from ossa.registry.v1 import registry_pb2_grpc
from ossa_cli.ports import free_port
from ossa_runtime import keys
from ossa_runtime.auth.client import bearer_metadata
from ossa_runtime.auth.interceptor import AuthInterceptor
from ossa_runtime.auth.tokens import mint_token
from ossa_runtime.ratelimit import RateLimitInterceptor
from ossa_runtime.server import ServiceHost
from ossa_runtime.settings import Settings
from registry_svc.server import build_server
from tests.servers import start_valkey

pytestmark = pytest.mark.integration

SECRET = "ratelimit-test-secret-" + "x" * 24
LIST_AGENTS = "ossa.registry.v1.AgentRegistryService/ListAgents"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def limited(settings: Settings) -> Settings:
    return settings.replace(jwt_secret=SECRET, auth_enabled=True, ratelimit_viewer=5, ratelimit_window_seconds=60)


def token(settings: Settings, sub: str, role: str) -> str:
    return mint_token(settings, sub=sub, role=role, ttl_seconds=600)[0]


@pytest.fixture(scope="module")
def second_process(limited: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registry in its own process (`python -m registry_svc`) on the same PostgreSQL and Redis."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSSA_")}
    env.update(limited.to_env())
    env.update(
        {
            "OSSA_JWT_SECRET": SECRET,
            "OSSA_DATABASE_URL": limited.database_url,
            "OSSA_REDIS_URL": limited.redis_url,
            "OSSA_REGISTRY_PORT": str(port),
            "OSSA_REGISTRY_METRICS_PORT": str(free_port()),
            "OSSA_LOG_LEVEL": "warning",
        }
    )
    env.pop("OSSA_DATA_DIR", None)
    log = tmp_path_factory.mktemp("registry2") / "registry.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "registry_svc"], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_serving(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=60)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.fixture(scope="module")
async def two_registries(limited: Settings, second_process: str) -> AsyncIterator[list[str]]:
    host, port = await build_server(limited, port=0)
    await host.start()
    try:
        await wait_serving(second_process)
        yield [f"127.0.0.1:{port}", second_process]
    finally:
        await host.stop()


@pytest.fixture
async def redis(limited: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(limited.redis_url, decode_responses=True)
    yield client
    await client.aclose()


def status_of(err: grpc.aio.AioRpcError) -> status_pb2.Status:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError("no grpc-status-details-bin")


def trailer(err: grpc.aio.AioRpcError, name: str) -> str | None:
    for key, value in err.trailing_metadata() or ():
        if key == name:
            return str(value)
    return None


async def list_agents(target: str, bearer: str) -> Any:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = registry_pb2_grpc.AgentRegistryServiceStub(channel)
        return await stub.ListAgents(pb.ListAgentsRequest(), metadata=bearer_metadata(bearer), timeout=10)


async def test_one_limit_across_two_processes(
    two_registries: list[str], limited: Settings, redis: aioredis.Redis
) -> None:
    viewer = token(limited, "alice-two-procs", "viewer")
    for i in range(5):  # the limit, spread over both processes
        await list_agents(two_registries[i % 2], viewer)
    assert int(await redis.get(keys.ratelimit("alice-two-procs", LIST_AGENTS)) or 0) == 5
    for target in two_registries:  # the 6th and 7th call: refused by either process
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await list_agents(target, viewer)
        err = caught.value
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        retry = int(trailer(err, "retry-after") or 0)
        assert 1 <= retry <= 60
        assert err.details() == f"rate limit of 5 per 60s exceeded for {LIST_AGENTS}; retry in {retry} s"
        info = error_details_pb2.RetryInfo()
        assert status_of(err).details[0].Unpack(info)
        assert info.retry_delay.seconds == retry
    ttl = await redis.ttl(keys.ratelimit("alice-two-procs", LIST_AGENTS))
    assert 0 < ttl <= 60
    # Someone else, and another endpoint of the same client, have their own counts.
    await list_agents(two_registries[0], token(limited, "bob-two-procs", "viewer"))
    async with grpc.aio.insecure_channel(two_registries[1]) as channel:
        stub = registry_pb2_grpc.AgentRegistryServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetAgent(
                pb.GetAgentRequest(agent_id="00000000-0000-0000-0000-000000000000"), metadata=bearer_metadata(viewer)
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_admins_are_not_limited_by_default(two_registries: list[str], limited: Settings) -> None:
    admin = token(limited, "root-two-procs", "admin")
    for i in range(8):
        await list_agents(two_registries[i % 2], admin)


async def test_health_checks_are_never_limited(limited: Settings) -> None:
    host, port = await build_server(limited.replace(ratelimit_anonymous=1), port=0)
    await host.start()
    try:
        for _ in range(3):
            await wait_serving(f"127.0.0.1:{port}")
    finally:
        await host.stop()


# Fail open ----------------------------------------------------------------------------------------


async def _echo(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return request


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    url, stop = start_valkey(tmp_path)
    stopped = False

    def stop_once() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            stop()

    try:
        yield url, stop_once
    finally:
        stop_once()


async def test_redis_down_fails_open(
    own_redis: tuple[str, Any], limited: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    url, stop_redis = own_redis
    settings = limited.replace(redis_url=url, ratelimit_admin=2)
    client = aioredis.Redis.from_url(url, decode_responses=True)
    host = ServiceHost(
        "echo", auth=AuthInterceptor(settings), ratelimit=RateLimitInterceptor(settings, client), grace_seconds=1
    )
    handler = grpc.method_handlers_generic_handler("test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)})
    host.server.add_generic_rpc_handlers((handler,))
    port = host.bind("127.0.0.1", 0)
    await host.start()
    admin = bearer_metadata(token(settings, "root-fail-open", "admin"))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            echo = channel.unary_unary("/test.Echo/Echo")
            assert await echo(b"1", metadata=admin, timeout=10) == b"1"
            assert await echo(b"2", metadata=admin, timeout=10) == b"2"
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await echo(b"3", metadata=admin, timeout=10)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            stop_redis()
            for i in range(3):  # Redis is gone: the calls go through
                assert await echo(b"x%d" % i, metadata=admin, timeout=10) == b"x%d" % i
    finally:
        await host.stop()
        await client.aclose()
    warnings = [r for r in caplog.records if r.name == "ossa.ratelimit"]
    assert [r.getMessage() for r in warnings] == ["rate limits not enforced: Redis unavailable"]
