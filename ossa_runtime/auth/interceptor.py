"""The server interceptor that authenticates and authorizes every RPC.

It runs inside the observability interceptor (ossa_runtime.interceptors), so a refusal is an
ordinary DomainError there: UNAUTHENTICATED (401) for a missing or bad token, PERMISSION_DENIED
(403) naming the missing permission, logged and counted like any other status. Public methods
(health, reflection, the health report, login) pass without a token. For every other call the
verified caller is the current `Principal` (ossa_runtime.auth.principal) while the handler runs,
and its id joins the call's access-log line.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import redis.asyncio as aioredis

from ossa_runtime import logging as ossa_logging
from ossa_runtime.auth.permissions import ADMIN_ALL, PUBLIC, required_permission
from ossa_runtime.auth.principal import Principal, acting_as
from ossa_runtime.auth.revocation import RevocationStore
from ossa_runtime.auth.tokens import TokenVerifier
from ossa_runtime.errors import PermissionDenied, Unauthenticated
from ossa_runtime.interceptors import ScopedInterceptor
from ossa_runtime.settings import Settings


def bearer_token(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The JWT of the call's `authorization: Bearer <jwt>` metadata; Unauthenticated otherwise."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("the authorization header must be 'Bearer <jwt>'")
            return token.strip()
    raise Unauthenticated("missing bearer token: send the header 'authorization: Bearer <jwt>'")


class Authenticator:
    """Decides one call: the caller's Principal, or Unauthenticated / PermissionDenied."""

    def __init__(self, settings: Settings, redis: aioredis.Redis | None = None, pool: Any = None) -> None:
        self.settings = settings
        self.verifier = TokenVerifier(settings) if settings.auth_enabled else None
        if redis is not None:
            self.attach(redis, pool)

    def attach(self, redis: aioredis.Redis, pool: Any = None) -> None:
        """Check revocations in `redis`, backed by PostgreSQL through `pool`, following the other
        processes' revocations as they happen (RevocationStore.listen, from the first checked
        call; `aclose()` stops it)."""
        if self.verifier is not None:
            store = RevocationStore(redis, pool, self.settings.auth_revocation_cache_seconds)
            store.listen()
            self.verifier.revocations = store

    async def aclose(self) -> None:
        """Stop following revocations (before the Redis client is closed)."""
        store = self.verifier.revocations if self.verifier is not None else None
        if store is not None:
            await store.aclose()

    async def authorize(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> tuple[Principal | None, str]:
        """The caller and its raw token; (None, "") when no token is needed."""
        if self.verifier is None:
            return None, ""
        permission = required_permission(method)
        if permission == PUBLIC:
            return None, ""
        token = bearer_token(context)
        claims = await self.verifier.authenticate(token)
        principal = Principal.from_claims(claims)
        _annotate(principal)
        if permission is None:  # a method missing from the table: deny by default
            permission = ADMIN_ALL
        if not principal.has(permission):
            raise PermissionDenied(f"permission denied: {method} requires {permission}")
        return principal, token


def _annotate(principal: Principal) -> None:
    """The caller's id on the call's access-log line (never its token)."""
    if principal.type == "agent":
        ossa_logging.annotate(agent_id=principal.sub, token_type=principal.type)
    else:
        ossa_logging.annotate(user_id=principal.sub, token_type=principal.type)


class AuthInterceptor(ScopedInterceptor):
    """Bearer JWT + permission table on every RPC of a service (see module docstring).

    Construction fails with AuthConfigError (naming the OSSA_* variable) when auth is enabled
    and no key can verify a token, so a service never starts open by mistake.
    """

    def __init__(self, settings: Settings, redis: aioredis.Redis | None = None, pool: Any = None) -> None:
        self.auth = Authenticator(settings, redis, pool)

    def attach(self, redis: aioredis.Redis, pool: Any = None) -> None:
        """Check revocations in `redis`/`pool` (services build the interceptor before connecting,
        so a missing JWT key fails before anything is opened)."""
        self.auth.attach(redis, pool)

    async def aclose(self) -> None:
        """Stop the revocation listener; ServiceHost calls it once the server has stopped."""
        await self.auth.aclose()

    def covers(self, method: str) -> bool:
        return self.auth.verifier is not None and required_permission(method) != PUBLIC

    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
        principal, token = await self.auth.authorize(method, context)
        with acting_as(principal, token):
            yield
