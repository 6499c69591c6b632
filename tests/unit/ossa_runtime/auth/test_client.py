"""Client side and principals: bearer interceptors, service tokens, object-level agent checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from ossa_runtime.auth.client import bearer_interceptors, bearer_metadata
from ossa_runtime.auth.principal import Principal, acting_as, can_act_as_agent, require, require_agent
from ossa_runtime.auth.service_token import ServiceToken
from ossa_runtime.auth.tokens import TokenVerifier
from ossa_runtime.errors import PermissionDenied
from ossa_runtime.settings import Settings
from ossa_sdk import Agent

SETTINGS = Settings.from_env({}, jwt_secret="client-test-secret-" + "x" * 32)
METHODS = {
    "Unary": "unary_unary",
    "ClientStream": "stream_unary",
    "ServerStream": "unary_stream",
    "Both": "stream_stream",
}


def _authorization(context: Any) -> bytes:
    found = [v for k, v in context.invocation_metadata() or () if k == "authorization"]
    return ",".join(found).encode()


async def _unary(request: bytes, context: Any) -> bytes:
    return _authorization(context)


async def _client_stream(requests: AsyncIterator[bytes], context: Any) -> bytes:
    async for _ in requests:
        pass
    return _authorization(context)


async def _server_stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield _authorization(context)


async def _both(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    async for _ in requests:
        yield _authorization(context)


@pytest.fixture
async def echo() -> AsyncIterator[str]:
    """A server answering every call shape with the authorization metadata it received."""
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary),
        "ClientStream": grpc.stream_unary_rpc_method_handler(_client_stream),
        "ServerStream": grpc.unary_stream_rpc_method_handler(_server_stream),
        "Both": grpc.stream_stream_rpc_method_handler(_both),
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


async def seen(channel: grpc.aio.Channel, name: str, metadata: tuple[tuple[str, str], ...] = ()) -> bytes:
    method = getattr(channel, METHODS[name])(f"/test.Echo/{name}")
    if name == "Unary":
        reply: bytes = await method(b"", metadata=metadata)
        return reply
    if name == "ClientStream":
        reply = await method(iter([b""]), metadata=metadata)
        return reply
    if name == "ServerStream":
        return b"".join([r async for r in method(b"", metadata=metadata)])
    return b"".join([r async for r in method(iter([b""]), metadata=metadata)])


@pytest.mark.parametrize("name", sorted(METHODS))
async def test_every_call_shape_carries_the_token(echo: str, name: str) -> None:
    async with grpc.aio.insecure_channel(echo, interceptors=bearer_interceptors("t0k")) as channel:
        assert await seen(channel, name) == b"Bearer t0k"
        assert await seen(channel, name, bearer_metadata("mine")) == b"Bearer mine"  # the caller's wins


async def test_no_token_sends_nothing_and_a_callable_is_asked_each_call(echo: str) -> None:
    assert bearer_interceptors("") == [] and bearer_interceptors(None) == [] and bearer_metadata("") == ()
    tokens = iter(["one", "two"])
    async with grpc.aio.insecure_channel(echo, interceptors=bearer_interceptors(lambda: next(tokens))) as channel:
        assert await seen(channel, "Unary") == b"Bearer one"
        assert await seen(channel, "Unary") == b"Bearer two"


def test_sdk_agent_takes_its_token_from_the_argument_or_ossa_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSSA_TOKEN", "from-env")
    assert Agent("a", capabilities=["x"])._token == "from-env"
    assert Agent("a", capabilities=["x"], token="given")._token == "given"


def test_service_token_is_a_short_lived_service_token_reused_until_half_its_life() -> None:
    token = ServiceToken(SETTINGS, "orchestrator", ["agent:read"], ttl_seconds=600)
    first = token()
    assert token() == first
    claims = TokenVerifier(SETTINGS).verify(first)
    assert (claims.sub, claims.type, claims.scope) == ("ossa-orchestrator", "service", ("agent:read",))
    assert ServiceToken(SETTINGS.replace(auth_enabled=False), "x", [])() == ""


def test_service_token_forwards_the_callers_when_it_cannot_mint() -> None:
    jwks_only = Settings.from_env({}, jwt_algorithms="RS256", jwt_jwks="/nonexistent")
    token = ServiceToken(jwks_only, "orchestrator", ["agent:read"])
    assert not token.can_mint and token() == ""
    with acting_as(None, "callers-token"):
        assert token() == "callers-token"


def principal(kind: str, sub: str = "agent-a", scopes: tuple[str, ...] = ("agent:write",)) -> Principal:
    return Principal(sub=sub, type=kind, scopes=scopes, jti="j", exp=0)


def test_agent_tokens_act_only_as_their_agent() -> None:
    agent = principal("agent")
    assert can_act_as_agent(agent, "id-1", "agent-a") and can_act_as_agent(principal("agent", "id-1"), "id-1", "n")
    assert not can_act_as_agent(agent, "id-2", "agent-b") and not can_act_as_agent(agent, "id-2", None)
    assert not can_act_as_agent(principal("agent", ""), "", None)
    assert can_act_as_agent(principal("agent", scopes=("admin:all",)), "id-2", "agent-b")
    assert can_act_as_agent(principal("user"), "id-2", "agent-b") and can_act_as_agent(None, "id-2", None)
    with acting_as(agent):
        require_agent("id-1", "agent-a")
        with pytest.raises(PermissionDenied, match="cannot act as agent 'agent-b'"):
            require_agent("id-2", "agent-b")
        with pytest.raises(PermissionDenied, match="agent:delete required"):
            require("agent:delete")
        assert require("agent:write") is agent
