"""ossa_runtime.ratelimit without Redis: window math, key names, who the client is, role limits."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from redis.exceptions import ConnectionError as RedisConnectionError

from ossa_runtime import keys
from ossa_runtime.auth.principal import Principal, acting_as
from ossa_runtime.errors import RateLimited
from ossa_runtime.ratelimit import (
    ANONYMOUS,
    RateLimiter,
    RateLimitInterceptor,
    decide,
    endpoint_name,
    limits_by_role,
    peer_address,
    role_of,
)
from ossa_runtime.settings import Settings, SettingsError

GET_AGENT = "/ossa.registry.v1.AgentRegistryService/GetAgent"


def test_key_is_the_specs() -> None:
    assert keys.ratelimit("alice", endpoint_name(GET_AGENT)) == (
        "ossa:ratelimit:alice:ossa.registry.v1.AgentRegistryService/GetAgent"
    )


@pytest.mark.parametrize(
    ("count", "ttl_ms", "limit", "allowed", "retry_after"),
    [
        (1, 60_000, 5, True, 60),
        (5, 30_000, 5, True, 30),  # the limit itself is still allowed
        (6, 30_000, 5, False, 30),
        (6, 29_001, 5, False, 30),  # rounds up: never tell a client to come back too early
        (6, 1, 5, False, 1),
        (6, 0, 5, False, 1),  # at least one second
        (6, -2, 5, False, 1),  # a key that just expired
    ],
)
def test_window_math(count: int, ttl_ms: int, limit: int, allowed: bool, retry_after: int) -> None:
    decision = decide(count, ttl_ms, limit)
    assert decision.allowed is allowed
    assert decision.retry_after == retry_after
    assert (decision.count, decision.limit) == (count, limit)


@pytest.mark.parametrize(
    ("scopes", "role"),
    [
        (("admin:all",), "admin"),
        (("agent:read", "workflow:read", "metrics:read"), "viewer"),
        (("agent:read",), "viewer"),
        ((), "viewer"),
        (("agent:read", "agent:write", "workflow:read", "workflow:execute"), "operator"),
        (("workflow:write",), "operator"),
    ],
)
def test_role_of_scopes(scopes: tuple[str, ...], role: str) -> None:
    assert role_of(scopes) == role


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("ipv4:10.1.2.3:5555", "", "10.1.2.3"),
        ("ipv6:[::1]:5555", "", "::1"),
        ("ipv4:127.0.0.1:5555", "203.0.113.9", "203.0.113.9"),  # Envoy on loopback: trust its entry
        ("ipv4:127.0.0.1:5555", "1.1.1.1, 203.0.113.9", "203.0.113.9"),  # the last one is Envoy's
        ("ipv4:10.1.2.3:5555", "203.0.113.9", "10.1.2.3"),  # not from loopback: a forged header
        ("unix:/tmp/sock", "", "unix:/tmp/sock"),
        ("", "", "unknown"),
    ],
)
def test_peer_address(peer: str, forwarded: str, client: str) -> None:
    assert peer_address(peer, forwarded) == client


def test_limits_by_role_from_settings() -> None:
    settings = Settings.from_env(
        {"OSSA_RATELIMIT_VIEWER": "7", "OSSA_RATELIMIT_OPERATOR": "8", "OSSA_RATELIMIT_ADMIN": "0"},
        ratelimit_anonymous=3,
    )
    assert limits_by_role(settings) == {ANONYMOUS: 3, "viewer": 7, "operator": 8, "admin": 0}


def test_negative_limit_is_refused_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="OSSA_RATELIMIT_VIEWER=-1"):
        Settings.from_env({"OSSA_RATELIMIT_VIEWER": "-1"})
    with pytest.raises(SettingsError, match="OSSA_RATELIMIT_WINDOW_SECONDS"):
        Settings.from_env({"OSSA_RATELIMIT_WINDOW_SECONDS": "0"})


def test_rate_limited_status_carries_retry_info_and_trailer() -> None:
    err = RateLimited("rate limit of 5 per 60s exceeded for x/Y; retry in 42 s", 42)
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = err.to_status()
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert info.retry_delay.seconds == 42
    assert err.trailing_metadata() == (("retry-after", "42"),)


# The interceptor's decision, with a fake Redis script --------------------------------------------


class FakeRedis:
    """Just enough of redis.asyncio.Redis for RateLimiter: a registered script counting per key."""

    def __init__(self, fail: bool = False) -> None:
        self.counts: dict[str, int] = {}
        self.calls = 0
        self.fail = fail

    def register_script(self, source: str) -> Any:
        async def run(keys: list[str], args: list[Any]) -> list[int]:
            self.calls += 1
            if self.fail:
                raise RedisConnectionError("connection refused")
            self.counts[keys[0]] = self.counts.get(keys[0], 0) + 1
            return [self.counts[keys[0]], int(args[0]) - 1500]

        return run


class FakeContext:
    def __init__(self, peer: str = "ipv4:10.0.0.7:1234") -> None:
        self._peer = peer

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()


def _interceptor(redis: FakeRedis, **limits: int) -> RateLimitInterceptor:
    settings = Settings.from_env({}, jwt_secret="x" * 32, ratelimit_window_seconds=60, **limits)
    return RateLimitInterceptor(settings, redis)  # type: ignore[arg-type]


def _principal(sub: str, *scopes: str) -> Principal:
    return Principal(sub=sub, type="user", scopes=scopes, jti="j-" + sub, exp=0)


async def test_over_the_limit_is_refused_with_a_retry_hint() -> None:
    redis = FakeRedis()
    interceptor = _interceptor(redis, ratelimit_viewer=2)
    with acting_as(_principal("alice", "agent:read")):
        await interceptor.check(GET_AGENT, FakeContext())  # type: ignore[arg-type]
        await interceptor.check(GET_AGENT, FakeContext())  # type: ignore[arg-type]
        with pytest.raises(RateLimited) as caught:
            await interceptor.check(GET_AGENT, FakeContext())  # type: ignore[arg-type]
    assert caught.value.message == (
        "rate limit of 2 per 60s exceeded for ossa.registry.v1.AgentRegistryService/GetAgent; retry in 59 s"
    )
    assert caught.value.retry_after_seconds == 59
    assert list(redis.counts) == ["ossa:ratelimit:alice:ossa.registry.v1.AgentRegistryService/GetAgent"]


async def test_clients_and_endpoints_count_separately() -> None:
    redis = FakeRedis()
    interceptor = _interceptor(redis, ratelimit_viewer=1, ratelimit_anonymous=1)
    with acting_as(_principal("alice", "agent:read")):
        await interceptor.check(GET_AGENT, FakeContext())  # type: ignore[arg-type]
        await interceptor.check("/ossa.registry.v1.AgentRegistryService/ListAgents", FakeContext())  # type: ignore[arg-type]
    with acting_as(_principal("bob", "agent:read")):
        await interceptor.check(GET_AGENT, FakeContext())  # type: ignore[arg-type]
    await interceptor.check(GET_AGENT, FakeContext("ipv4:10.0.0.8:1"))  # type: ignore[arg-type]
    assert sorted(redis.counts) == [
        "ossa:ratelimit:10.0.0.8:ossa.registry.v1.AgentRegistryService/GetAgent",
        "ossa:ratelimit:alice:ossa.registry.v1.AgentRegistryService/GetAgent",
        "ossa:ratelimit:alice:ossa.registry.v1.AgentRegistryService/ListAgents",
        "ossa:ratelimit:bob:ossa.registry.v1.AgentRegistryService/GetAgent",
    ]


async def test_a_role_without_a_limit_costs_no_redis_call() -> None:
    redis = FakeRedis()
    interceptor = _interceptor(redis, ratelimit_admin=0)
    with acting_as(_principal("root", "admin:all")):
        for _ in range(5):
            await interceptor.check(GET_AGENT, FakeContext())  # type: ignore[arg-type]
    assert redis.calls == 0


async def test_no_limits_at_all_when_authentication_is_off() -> None:
    settings = Settings.from_env({}, auth_enabled=False, ratelimit_anonymous=1)
    interceptor = RateLimitInterceptor(settings, FakeRedis())  # type: ignore[arg-type]
    assert set(interceptor.limits.values()) == {0}


async def test_redis_down_fails_open_and_backs_off(caplog: pytest.LogCaptureFixture) -> None:
    redis = FakeRedis(fail=True)
    limiter = RateLimiter(redis, 60)  # type: ignore[arg-type]
    assert await limiter.hit("alice", "x/Y", 1) is None
    assert await limiter.hit("alice", "x/Y", 1) is None
    assert redis.calls == 1  # the second call did not wait for Redis again
    assert [r.getMessage() for r in caplog.records] == ["rate limits not enforced: Redis unavailable"]
