"""Sessions and API keys (ossa.auth.v1.AuthService) on the real gateway process, real PostgreSQL and
Redis: login with OSSA_API_KEY and with admin-created keys, the session keys in Redis, logout and
revocation refusing the token everywhere the gateway checks it."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis
from google.rpc import error_details_pb2, status_pb2

from gateway_http.server import build_server
from ossa.auth.v1 import auth_pb2 as pb
from ossa.auth.v1 import auth_pb2_grpc
from ossa_runtime import keys
from ossa_runtime.auth.client import bearer_metadata
from ossa_runtime.auth.tokens import TokenVerifier, mint_token
from ossa_runtime.settings import Settings

pytestmark = pytest.mark.integration

SECRET = "sessions-test-secret-" + "y" * 24
ENV_KEY = "env-admin-key-" + secrets.token_hex(16)
Stub = auth_pb2_grpc.AuthServiceStub


@pytest.fixture(scope="module")
def auth_settings(settings: Settings) -> Settings:
    return settings.replace(jwt_secret=SECRET, auth_enabled=True, api_key=ENV_KEY, auth_revocation_cache_seconds=60)


@pytest.fixture(scope="module")
async def gateway(auth_settings: Settings) -> AsyncIterator[str]:
    host, port = await build_server(auth_settings, port=0)
    await host.start()
    yield f"127.0.0.1:{port}"
    await host.stop()


@pytest.fixture
async def stub(gateway: str) -> AsyncIterator[Stub]:
    async with grpc.aio.insecure_channel(gateway) as channel:
        yield auth_pb2_grpc.AuthServiceStub(channel)


@pytest.fixture
async def redis(auth_settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(auth_settings.redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def login(stub: Stub, key: str) -> pb.LoginResponse:
    reply: pb.LoginResponse = await stub.Login(pb.LoginRequest(api_key=key), timeout=10)
    return reply


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return bearer_metadata(token)


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def bad_fields(err: grpc.aio.AioRpcError) -> list[str]:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            detail = error_details_pb2.BadRequest()
            assert status_pb2.Status.FromString(value).details[0].Unpack(detail)
            return [v.field for v in detail.field_violations]
    return []


def name() -> str:
    return f"key-{secrets.token_hex(4)}"


async def test_login_with_the_env_api_key(stub: Stub, redis: aioredis.Redis, auth_settings: Settings) -> None:
    reply = await login(stub, ENV_KEY)
    assert (reply.user_id, reply.role, reply.token_type) == ("admin", pb.Role.admin, "Bearer")
    assert reply.expires_in == auth_settings.session_token_ttl_seconds == 900
    claims = TokenVerifier(auth_settings).verify(reply.access_token)
    assert (claims.sub, claims.type, claims.scope) == ("admin", "user", ("admin:all",))
    assert claims.exp - claims.iat == 900
    session = await redis.hgetall(keys.session(reply.session_id))
    assert session["user_id"] == "admin" and session["jti"] == claims.jti and session["role"] == "admin"
    assert session["api_key_id"] == "env" and int(session["token_expires_at"]) == claims.exp
    assert 0 < await redis.ttl(keys.session(reply.session_id)) <= 3600
    assert reply.session_id in await redis.smembers(keys.user_sessions("admin"))
    assert 0 < await redis.ttl(keys.user_sessions("admin")) <= 3600
    # The JWT works: an admin-only call.
    await stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=bearer(reply.access_token))


async def test_wrong_or_missing_key(stub: Stub) -> None:
    for key in ("nope", "ossa_" + secrets.token_urlsafe(32), ENV_KEY + "x"):
        err = await refused(login(stub, key))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert err.details() == "invalid or revoked API key"
    err = await refused(login(stub, "  "))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_fields(err) == ["api_key"]
    err = await refused(login(stub, "k" * 300))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_fields(err) == ["api_key"]


async def test_admin_created_key_logs_in_with_its_role(
    stub: Stub, redis: aioredis.Redis, auth_settings: Settings, database_url: str
) -> None:
    admin = (await login(stub, ENV_KEY)).access_token
    key_name = name()
    created = await stub.CreateApiKey(
        pb.CreateApiKeyRequest(name=key_name, role=pb.Role.viewer), metadata=bearer(admin)
    )
    assert created.key.startswith("ossa_") and len(created.key) > 40
    assert created.api_key.name == key_name and created.api_key.role == pb.Role.viewer
    assert created.key.startswith(created.api_key.prefix) and not created.api_key.HasField("revoked_at")
    # Stored hashed: the key itself is nowhere in the table.
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT * FROM api_keys WHERE id = $1::uuid", created.api_key.id)
    finally:
        await conn.close()
    assert row["key_hash"] == hashlib.sha256(created.key.encode()).hexdigest()
    assert created.key not in " ".join(str(v) for v in row.values())
    # Listed without the key.
    listed = await stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=bearer(admin))
    mine = [k for k in listed.api_keys if k.id == created.api_key.id]
    assert len(mine) == 1 and mine[0].prefix == created.api_key.prefix

    reply = await login(stub, created.key)
    assert (reply.user_id, reply.role) == (key_name, pb.Role.viewer)
    claims = TokenVerifier(auth_settings).verify(reply.access_token)
    assert claims.sub == key_name and set(claims.scope) == {"agent:read", "workflow:read", "metrics:read"}
    assert reply.session_id in await redis.smembers(keys.user_sessions(key_name))
    # A viewer may not manage keys.
    err = await refused(stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=bearer(reply.access_token)))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "admin:all" in (err.details() or "")


async def test_logout_revokes_the_token_and_removes_the_session(stub: Stub, redis: aioredis.Redis) -> None:
    admin = (await login(stub, ENV_KEY)).access_token
    created = await stub.CreateApiKey(
        pb.CreateApiKeyRequest(name=name(), role=pb.Role.operator), metadata=bearer(admin)
    )
    session = await login(stub, created.key)
    token = session.access_token
    out = await stub.Logout(pb.LogoutRequest(), metadata=bearer(token))
    assert out.session_id == session.session_id and out.revoked_jti
    assert await redis.exists(keys.session(session.session_id)) == 0
    assert session.session_id not in await redis.smembers(keys.user_sessions(created.api_key.name))
    assert await redis.exists(keys.token_revoked(out.revoked_jti)) == 1
    err = await refused(stub.Logout(pb.LogoutRequest(), metadata=bearer(token)))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in (err.details() or "")
    # The key itself still works: a new login is a new session.
    again = await login(stub, created.key)
    assert again.session_id != session.session_id


async def test_logout_by_session_id_is_for_its_owner_or_an_admin(stub: Stub, redis: aioredis.Redis) -> None:
    admin = (await login(stub, ENV_KEY)).access_token
    a = await stub.CreateApiKey(pb.CreateApiKeyRequest(name=name(), role=pb.Role.viewer), metadata=bearer(admin))
    b = await stub.CreateApiKey(pb.CreateApiKeyRequest(name=name(), role=pb.Role.viewer), metadata=bearer(admin))
    session_a = await login(stub, a.key)
    session_b = await login(stub, b.key)
    err = await refused(
        stub.Logout(pb.LogoutRequest(session_id=session_a.session_id), metadata=bearer(session_b.access_token))
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    err = await refused(stub.Logout(pb.LogoutRequest(session_id="no-such-session"), metadata=bearer(admin)))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    await stub.Logout(pb.LogoutRequest(session_id=session_a.session_id), metadata=bearer(admin))
    assert await redis.exists(keys.session(session_a.session_id)) == 0


async def test_logout_of_a_token_from_no_login_is_refused(stub: Stub, auth_settings: Settings) -> None:
    minted, _ = mint_token(auth_settings, sub="script", role="admin", ttl_seconds=300)
    err = await refused(stub.Logout(pb.LogoutRequest(), metadata=bearer(minted)))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    await stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=bearer(minted))  # and it was not revoked


async def test_revoked_key_cannot_log_in_and_its_sessions_end(stub: Stub, redis: aioredis.Redis) -> None:
    admin = (await login(stub, ENV_KEY)).access_token
    created = await stub.CreateApiKey(pb.CreateApiKeyRequest(name=name(), role=pb.Role.admin), metadata=bearer(admin))
    session = await login(stub, created.key)
    await stub.RevokeApiKey(pb.RevokeApiKeyRequest(api_key_id=created.api_key.id), metadata=bearer(admin))
    await stub.RevokeApiKey(pb.RevokeApiKeyRequest(api_key_id=created.api_key.id), metadata=bearer(admin))  # again
    err = await refused(login(stub, created.key))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await redis.exists(keys.session(session.session_id)) == 0
    err = await refused(stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=bearer(session.access_token)))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    listed = await stub.ListApiKeys(pb.ListApiKeysRequest(include_revoked=True), metadata=bearer(admin))
    assert [k.HasField("revoked_at") for k in listed.api_keys if k.id == created.api_key.id] == [True]
    assert created.api_key.id not in {
        k.id for k in (await stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=bearer(admin))).api_keys
    }
    # The name is free again.
    await stub.CreateApiKey(
        pb.CreateApiKeyRequest(name=created.api_key.name, role=pb.Role.viewer), metadata=bearer(admin)
    )


async def test_revoke_token_by_jti(stub: Stub, auth_settings: Settings) -> None:
    admin = (await login(stub, ENV_KEY)).access_token
    victim, claims = mint_token(auth_settings, sub="victim", role="admin", ttl_seconds=300)
    await stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=bearer(victim))
    await stub.RevokeToken(pb.RevokeTokenRequest(jti=claims.jti), metadata=bearer(admin))
    err = await refused(stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=bearer(victim)))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    err = await refused(stub.RevokeToken(pb.RevokeTokenRequest(jti=" "), metadata=bearer(admin)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_fields(err) == ["jti"]


async def test_api_key_requests_are_validated(stub: Stub) -> None:
    admin = (await login(stub, ENV_KEY)).access_token
    cases = [
        (pb.CreateApiKeyRequest(name="", role=pb.Role.viewer), ["name"]),
        (pb.CreateApiKeyRequest(name="Has Spaces", role=pb.Role.viewer), ["name"]),
        (pb.CreateApiKeyRequest(name="admin", role=pb.Role.viewer), ["name"]),  # OSSA_API_KEY's user
        (pb.CreateApiKeyRequest(name=name()), ["role"]),
    ]
    for request, fields in cases:
        err = await refused(stub.CreateApiKey(request, metadata=bearer(admin)))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_fields(err) == fields, request
    taken = name()
    await stub.CreateApiKey(pb.CreateApiKeyRequest(name=taken, role=pb.Role.viewer), metadata=bearer(admin))
    err = await refused(
        stub.CreateApiKey(pb.CreateApiKeyRequest(name=taken, role=pb.Role.admin), metadata=bearer(admin))
    )
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    err = await refused(stub.RevokeApiKey(pb.RevokeApiKeyRequest(api_key_id="not-a-uuid"), metadata=bearer(admin)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_fields(err) == ["api_key_id"]
    err = await refused(
        stub.RevokeApiKey(
            pb.RevokeApiKeyRequest(api_key_id="00000000-0000-0000-0000-000000000000"), metadata=bearer(admin)
        )
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_no_token_is_refused_but_login_needs_none(stub: Stub) -> None:
    err = await refused(stub.ListApiKeys(pb.ListApiKeysRequest()))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    err = await refused(stub.Logout(pb.LogoutRequest()))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    await login(stub, ENV_KEY)


async def test_cli_token_revoke_against_the_gateway(
    stub: Stub, gateway: str, auth_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from ossa_cli.main import main

    admin = (await login(stub, ENV_KEY)).access_token
    victim, claims = mint_token(auth_settings, sub="cli-victim", role="admin", ttl_seconds=300)
    code = await asyncio.to_thread(main, ["token", "revoke", claims.jti, "--gateway", gateway, "--token", admin])
    assert code == 0
    assert capsys.readouterr().out.strip() == f"revoked token {claims.jti}"
    err = await refused(stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=bearer(victim)))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    # A viewer may not revoke: exit 1 naming the refusal.
    viewer, _ = mint_token(auth_settings, sub="cli-viewer", role="viewer", ttl_seconds=300)
    code = await asyncio.to_thread(main, ["token", "revoke", "some-jti", "--gateway", gateway, "--token", viewer])
    assert code == 1
    assert "PERMISSION_DENIED" in capsys.readouterr().err


async def test_redis_down_is_unavailable_not_internal(auth_settings: Settings) -> None:
    from auth_svc.api_keys import ApiKeyStore
    from auth_svc.servicer import AuthServicer
    from auth_svc.sessions import SessionStore
    from ossa_cli.ports import free_port
    from ossa_runtime.auth.revocation import RevocationStore
    from ossa_runtime.errors import Unavailable

    dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", decode_responses=True)
    try:
        servicer = AuthServicer(
            auth_settings, ApiKeyStore(None, ENV_KEY), SessionStore(dead, 3600), RevocationStore(dead)
        )
        with pytest.raises(Unavailable, match="PostgreSQL or Redis cannot be reached"):
            await servicer.Login(pb.LoginRequest(api_key=ENV_KEY), None)
    finally:
        await dead.aclose()
