"""ossa.auth.v1.AuthService, hosted by the gateway's gRPC process: login sessions and API keys.

Login exchanges an API key for a session (auth_svc.sessions) and a short-lived JWT whose `jti`
the session records; Logout ends the session and revokes that token (ossa_runtime.auth.revocation,
so every service refuses it at once). Admins create, list and revoke API keys (revoking one ends
its sessions too) and revoke any token by its `jti`. What each RPC needs is in the one permission
table (ossa_runtime.auth.permissions): Login is public, Logout needs any valid token, the rest
admin:all.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import grpc
import redis.asyncio as aioredis
from google.protobuf import timestamp_pb2
from redis.exceptions import RedisError

from auth_svc.api_keys import ApiKeyRecord, ApiKeyStore
from auth_svc.sessions import Session, SessionStore
from ossa.auth.v1 import auth_pb2 as pb
from ossa.auth.v1 import auth_pb2_grpc
from ossa_runtime.auth.principal import current_principal
from ossa_runtime.auth.revocation import RevocationStore
from ossa_runtime.auth.tokens import mint_token
from ossa_runtime.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from ossa_runtime.settings import Settings

log = logging.getLogger("ossa.auth")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AuthService"].full_name
MAX_KEY_CHARS = 256
MAX_JTI_CHARS = 255  # revoked_tokens.jti is VARCHAR(255)
# How long a revocation by jti alone is kept when the token's expiry is not given.
DEFAULT_REVOCATION_SECONDS = 366 * 24 * 3600
ROLE_NAMES = {v: k for k, v in pb.Role.Value.items() if v != pb.Role.role_unspecified}


def _timestamp(when: datetime | float | None) -> timestamp_pb2.Timestamp | None:
    if when is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when if isinstance(when, datetime) else datetime.fromtimestamp(when, UTC))
    return ts


def api_key_message(record: ApiKeyRecord) -> pb.ApiKey:
    return pb.ApiKey(
        id=record.id,
        name=record.name,
        role=record.role,  # type: ignore[arg-type]  # a value name of pb.Role.Value
        prefix=record.prefix,
        created_at=_timestamp(record.created_at),
        revoked_at=_timestamp(record.revoked_at),
        last_used_at=_timestamp(record.last_used_at),
    )


def _role(value: int) -> str:
    if value not in ROLE_NAMES:
        raise InvalidArgument("role", f"is required: one of {', '.join(ROLE_NAMES.values())}")
    return ROLE_NAMES[value]


R = TypeVar("R")
# A datastore that cannot be reached: the call fails with UNAVAILABLE (503), not INTERNAL.
_DOWN = (RedisError, OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


def _datastores(method: Callable[[Any, Any, Any], Awaitable[R]]) -> Callable[[Any, Any, Any], Awaitable[R]]:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: Any) -> R:
        try:
            return await method(self, request, context)
        except _DOWN as err:
            log.warning("auth datastore unavailable", extra={"metadata": {"error": f"{type(err).__name__}: {err}"}})
            raise Unavailable("sessions and API keys are unavailable: PostgreSQL or Redis cannot be reached") from err

    return wrapper


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(
        self, settings: Settings, keys: ApiKeyStore, sessions: SessionStore, revocations: RevocationStore
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.sessions = sessions
        self.revocations = revocations

    @_datastores
    async def Login(self, request: pb.LoginRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.LoginResponse:
        key = request.api_key.strip()
        if not key:
            raise InvalidArgument("api_key", "is required")
        if len(key) > MAX_KEY_CHARS:
            raise InvalidArgument("api_key", f"is longer than {MAX_KEY_CHARS} characters")
        identity = await self.keys.identify(key)
        if identity is None:
            raise Unauthenticated("invalid or revoked API key")
        ttl = min(self.settings.session_token_ttl_seconds, self.settings.session_ttl_seconds)
        token, claims = mint_token(self.settings, sub=identity.user_id, role=identity.role, ttl_seconds=ttl)
        session = await self.sessions.create(
            user_id=identity.user_id,
            role=identity.role,
            api_key_id=identity.api_key_id,
            jti=claims.jti,
            token_expires_at=claims.exp,
        )
        log.info(
            "login",
            extra={"metadata": {"user_id": identity.user_id, "api_key_id": identity.api_key_id, "jti": claims.jti}},
        )
        return pb.LoginResponse(
            session_id=session.id,
            access_token=token,
            token_type="Bearer",
            expires_in=ttl,
            expires_at=_timestamp(claims.exp),
            session_expires_at=_timestamp(session.expires_at),
            user_id=identity.user_id,
            role=identity.role,  # type: ignore[arg-type]  # a value name of pb.Role.Value
        )

    @_datastores
    async def Logout(self, request: pb.LogoutRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.LogoutResponse:
        principal = current_principal()
        if principal is None:  # only when the service runs without authentication
            raise FailedPrecondition("logout needs the bearer token of a login (authentication is off)")
        if request.session_id:
            session = await self.sessions.get(request.session_id)
            if session is None:
                raise NotFound(f"session {request.session_id} not found (ended or expired)")
            if session.user_id != principal.sub and not principal.is_admin:
                raise PermissionDenied("permission denied: the session belongs to another user")
        else:
            mine = [s for s in await self.sessions.of_user(principal.sub) if s.jti == principal.jti]
            if not mine:
                raise FailedPrecondition(
                    "this token does not come from a login: pass session_id, or revoke the token by its jti"
                )
            session = mine[0]
        await self._end(session)
        log.info("logout", extra={"metadata": {"user_id": session.user_id, "jti": session.jti}})
        return pb.LogoutResponse(session_id=session.id, revoked_jti=session.jti)

    async def _end(self, session: Session) -> None:
        """Revoke the session's token first (the part that matters), then forget the session."""
        await self.revocations.revoke(session.jti, session.token_expires_at)
        await self.sessions.end(session)

    @_datastores
    async def CreateApiKey(
        self, request: pb.CreateApiKeyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CreateApiKeyResponse:
        role = _role(request.role)
        principal = current_principal()
        record, key = await self.keys.create(request.name, role, principal.sub if principal else "")
        log.info("api key created", extra={"metadata": {"api_key_id": record.id, "name": record.name, "role": role}})
        return pb.CreateApiKeyResponse(api_key=api_key_message(record), key=key)

    @_datastores
    async def ListApiKeys(
        self, request: pb.ListApiKeysRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListApiKeysResponse:
        records = await self.keys.list(include_revoked=request.include_revoked)
        return pb.ListApiKeysResponse(api_keys=[api_key_message(r) for r in records])

    @_datastores
    async def RevokeApiKey(
        self, request: pb.RevokeApiKeyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RevokeApiKeyResponse:
        if not request.api_key_id:
            raise InvalidArgument("api_key_id", "is required")
        record = await self.keys.revoke(request.api_key_id)
        ended = [s for s in await self.sessions.of_user(record.name) if s.api_key_id == record.id]
        for session in ended:
            await self._end(session)
        log.info("api key revoked", extra={"metadata": {"api_key_id": record.id, "sessions_ended": len(ended)}})
        return pb.RevokeApiKeyResponse()

    @_datastores
    async def RevokeToken(
        self, request: pb.RevokeTokenRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RevokeTokenResponse:
        jti = request.jti.strip()
        if not jti:
            raise InvalidArgument("jti", "is required")
        if len(jti) > MAX_JTI_CHARS or not jti.isprintable():
            raise InvalidArgument("jti", f"must be at most {MAX_JTI_CHARS} printable characters")
        if request.HasField("expires_at"):
            try:
                expires_at = request.expires_at.ToDatetime(UTC)
            except (ValueError, OverflowError):
                raise InvalidArgument("expires_at", "is not a valid time") from None
        else:
            expires_at = datetime.fromtimestamp(time.time() + DEFAULT_REVOCATION_SECONDS, UTC)
        await self.revocations.revoke(jti, expires_at)
        log.info("token revoked", extra={"metadata": {"jti": jti}})
        return pb.RevokeTokenResponse()


def install(host: Any, settings: Settings, pool: Any, redis: aioredis.Redis, auth: Any = None) -> AuthServicer:
    """Serve AuthService on `host` (a ServiceHost). It shares the revocation store of `auth` (the
    process's AuthInterceptor), so a logout is refused by this process at once."""
    verifier = getattr(getattr(auth, "auth", None), "verifier", None)
    revocations = getattr(verifier, "revocations", None)
    if not isinstance(revocations, RevocationStore):
        revocations = RevocationStore(redis, pool, settings.auth_revocation_cache_seconds)
    servicer = AuthServicer(
        settings, ApiKeyStore(pool, settings.api_key), SessionStore(redis, settings.session_ttl_seconds), revocations
    )
    host.add_service(SERVICE_NAME, auth_pb2_grpc.add_AuthServiceServicer_to_server, servicer)
    return servicer
