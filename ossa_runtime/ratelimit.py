"""Rate limits per client and RPC, shared by every process of every service through Redis.

Algorithm: a FIXED window. The first call of a client to an RPC creates
`ossa:ratelimit:{clientId}:{endpoint}` (a STRING counter) with a TTL of the window; every call
increments it, atomically with setting the TTL in one Lua script, so any number of service
processes share one count. A call that takes the count past the limit of the caller's role is
refused with RESOURCE_EXHAUSTED (HTTP 429 through Envoy) carrying a `google.rpc.RetryInfo` and a
`retry-after` trailer (the Retry-After header for REST clients): the seconds until the key expires
and the window starts again. A fixed window lets a client make up to twice the limit across a
window boundary; that is the price of one Redis command per call.

clientId is the authenticated principal's `sub`, or the caller's address when it has no token (the
address Envoy puts last in x-forwarded-for when the call came through Envoy on loopback). endpoint
is the gRPC method without its leading slash (`ossa.registry.v1.AgentRegistryService/GetAgent`).
Limits per role come from settings (`ratelimit_viewer`, `ratelimit_operator`, `ratelimit_admin`,
`ratelimit_anonymous` per `ratelimit_window_seconds`; 0 turns a role's limit off and costs no
Redis call). Health checks and reflection are never limited, nor is anything when authentication
is off (OSSA_AUTH_ENABLED=false: no caller could be told apart).

Redis trouble must not take a service down: the limiter fails open (the call proceeds) with a
warning logged at most every `WARN_EVERY_SECONDS`, and skips Redis for `BACKOFF_SECONDS` after a
failure so a dead Redis does not add a timeout to every call.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ossa_runtime import keys
from ossa_runtime.auth.permissions import ADMIN_ALL, ROLES
from ossa_runtime.auth.principal import Principal, current_principal
from ossa_runtime.errors import RateLimited
from ossa_runtime.interceptors import ScopedInterceptor
from ossa_runtime.settings import Settings

log = logging.getLogger("ossa.ratelimit")

# Never limited: health checks (they must stay cheap and answer under load) and reflection.
EXEMPT_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.", "/ossa.gateway.v1.GatewayService/GetHealth")
ANONYMOUS = "anonymous"
REDIS_TIMEOUT_SECONDS = 0.5
BACKOFF_SECONDS = 1.0
WARN_EVERY_SECONDS = 10.0

# KEYS[1] = the counter, ARGV[1] = the window in ms. Returns {count, ms until the window ends}.
# A counter without a TTL (the first call of a window, or one left by a crash) gets the window.
FIXED_WINDOW_LUA = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


@dataclass(frozen=True)
class Decision:
    """The outcome of one call against its limit."""

    allowed: bool
    count: int  # calls in the current window, this one included
    limit: int
    retry_after: int  # whole seconds until the window ends (at least 1)


def decide(count: int, ttl_ms: int, limit: int) -> Decision:
    """Window math: the call is allowed while the window's count is within the limit."""
    retry_after = max(1, math.ceil(max(ttl_ms, 0) / 1000))
    return Decision(count <= limit, count, limit, retry_after)


def endpoint_name(method: str) -> str:
    """`/pkg.Service/Method` → `pkg.Service/Method` (the `{endpoint}` part of the key)."""
    return method.lstrip("/")


def role_of(scopes: tuple[str, ...] | list[str] | frozenset[str]) -> str:
    """The role whose limit applies: admin with admin:all, viewer when every scope is a viewer's,
    operator otherwise (a token with any write or execute permission)."""
    granted = set(scopes)
    if ADMIN_ALL in granted:
        return "admin"
    if granted <= set(ROLES["viewer"]):
        return "viewer"
    return "operator"


def limits_by_role(settings: Settings) -> dict[str, int]:
    return {
        ANONYMOUS: settings.ratelimit_anonymous,
        "viewer": settings.ratelimit_viewer,
        "operator": settings.ratelimit_operator,
        "admin": settings.ratelimit_admin,
    }


def peer_address(peer: str, forwarded_for: str = "") -> str:
    """The caller's IP from a gRPC peer string (`ipv4:1.2.3.4:5678`, `ipv6:[::1]:5678`).

    When the peer is loopback (Envoy on this machine) the last x-forwarded-for entry, which Envoy
    appended (use_remote_address), names the real client; anyone else's header is not trusted.
    """
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        address = rest.rsplit(":", 1)[0]
    elif kind == "ipv6":
        address = rest.rsplit(":", 1)[0].strip("[]")
    else:
        address = peer or "unknown"
    if forwarded_for:
        try:
            loopback = ipaddress.ip_address(address).is_loopback
        except ValueError:
            loopback = False
        last = forwarded_for.rsplit(",", 1)[-1].strip()
        if loopback and last:
            return last
    return address


class RateLimiter:
    """Counts calls in Redis; `hit` answers None when Redis cannot be asked (fail open)."""

    def __init__(self, redis: aioredis.Redis, window_seconds: int) -> None:
        self.redis = redis
        self.window_seconds = window_seconds
        self._script = redis.register_script(FIXED_WINDOW_LUA)
        self._skip_until = 0.0
        self._warned_at = -math.inf

    async def hit(self, client_id: str, endpoint: str, limit: int) -> Decision | None:
        now = time.monotonic()
        if now < self._skip_until:
            return None
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                count, ttl_ms = await self._script(
                    keys=[keys.ratelimit(client_id, endpoint)], args=[self.window_seconds * 1000]
                )
        except (RedisError, OSError, TimeoutError) as err:
            self._skip_until = now + BACKOFF_SECONDS
            if now - self._warned_at >= WARN_EVERY_SECONDS:
                self._warned_at = now
                log.warning(
                    "rate limits not enforced: Redis unavailable",
                    extra={"metadata": {"error": f"{type(err).__name__}: {err}"}},
                )
            return None
        return decide(int(count), int(ttl_ms), limit)


class RateLimitInterceptor(ScopedInterceptor):
    """Refuses a call over its client's limit; runs after authentication (it needs the principal)."""

    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        # Without authentication every caller is anonymous: limits are per authenticated client.
        self.limits = limits_by_role(settings) if settings.auth_enabled else dict.fromkeys(limits_by_role(settings), 0)
        self.window = settings.ratelimit_window_seconds
        self.limiter = RateLimiter(redis, self.window)

    def _limit_for(self, principal: Principal | None) -> tuple[str, int]:
        role = ANONYMOUS if principal is None else role_of(tuple(principal.scopes))
        return role, self.limits[role]

    async def check(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Count this call; raise RateLimited when it is over the limit."""
        principal = current_principal()
        _, limit = self._limit_for(principal)
        if limit <= 0:
            return
        if principal is not None:
            client = principal.sub
        else:
            forwarded = dict(context.invocation_metadata() or ()).get("x-forwarded-for", "")
            client = peer_address(context.peer() or "", forwarded if isinstance(forwarded, str) else "")
        endpoint = endpoint_name(method)
        decision = await self.limiter.hit(client, endpoint, limit)
        if decision is not None and not decision.allowed:
            raise RateLimited(
                f"rate limit of {limit} per {self.window}s exceeded for {endpoint}; retry in {decision.retry_after} s",
                decision.retry_after,
            )

    def covers(self, method: str) -> bool:
        return not method.startswith(EXEMPT_PREFIXES) and any(v > 0 for v in self.limits.values())

    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
        """Counts the call (a stream once, when it opens)."""
        await self.check(method, context)
        yield
