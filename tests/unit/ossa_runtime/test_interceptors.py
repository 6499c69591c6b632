"""ossa_runtime.interceptors: domain errors become statuses, crashes become INTERNAL, calls are logged."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import asyncpg
import grpc
import pytest
import redis.exceptions

from ossa_runtime import errors
from ossa_runtime.interceptors import Chain, ScopedInterceptor
from ossa_runtime.logging import configure_logging
from ossa_runtime.server import ServiceHost


async def unary(request: bytes, context: Any) -> bytes:
    kind = request.decode()
    if kind == "notfound":
        raise errors.NotFound("thing 7 not found")
    if kind == "invalid":
        raise errors.InvalidArgument("size", "must be positive")
    if kind == "crash":
        raise ZeroDivisionError("secret internals")
    if kind in UNREACHABLE:
        raise UNREACHABLE[kind]
    return b"ok:" + request


# A datastore that is down, as each driver reports it.
UNREACHABLE: dict[str, BaseException] = {
    "refused": ConnectionRefusedError(111, "Connection refused"),
    "pg-gone": asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    "pg-shutdown": asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    "pg-broken": asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
    "redis-down": redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
}


async def stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield b"first"
    raise errors.AlreadyExists("dup")


@pytest.fixture
async def target() -> AsyncIterator[str]:
    host = ServiceHost("test", grace_seconds=0.1)
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
    }
    host.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.v1.Test", handlers),))
    port = host.bind("127.0.0.1", 0)
    await host.start()
    yield f"127.0.0.1:{port}"
    await host.stop()
    await host.stop()  # idempotent


async def call(target: str, payload: bytes) -> bytes:
    async with grpc.aio.insecure_channel(target) as channel:
        result: bytes = await channel.unary_unary("/test.v1.Test/Unary")(payload)
        return result


@pytest.mark.parametrize(
    ("payload", "code", "message"),
    [
        (b"notfound", grpc.StatusCode.NOT_FOUND, "thing 7 not found"),
        (b"invalid", grpc.StatusCode.INVALID_ARGUMENT, "invalid request: size: must be positive"),
    ],
)
async def test_domain_errors_map_to_codes(target: str, payload: bytes, code: grpc.StatusCode, message: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(target, payload)
    assert err.value.code() == code
    assert err.value.details() == message


@pytest.mark.parametrize("payload", [k.encode() for k in UNREACHABLE])
async def test_an_unreachable_datastore_is_unavailable_not_internal(target: str, payload: bytes) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(target, payload)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # callers retry it; INTERNAL they would not
    store = "Redis" if payload.startswith(b"redis") else "the database"
    assert err.value.details().startswith(f"{store} is unavailable (") and "try again" in err.value.details()


async def test_crash_is_internal_without_internals(target: str) -> None:
    stream_ = io.StringIO()
    configure_logging("ossa-test", "info", stream_)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(target, b"crash")
        # The server writes its access line after the status went out: the client may be first.
        for _ in range(200):
            if '"rpc finished"' in stream_.getvalue():
                break
            await asyncio.sleep(0.01)
    finally:
        logging.getLogger().handlers.clear()
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (err.value.details() or "")
    lines = [json.loads(line) for line in stream_.getvalue().splitlines()]
    crash = next(e for e in lines if e["level"] == "error")
    assert "ZeroDivisionError" in crash["metadata"]["exception"]
    assert crash["metadata"]["reference"] in (err.value.details() or "")
    access = next(e for e in lines if e["message"] == "rpc finished")
    assert access["metadata"]["method"] == "/test.v1.Test/Unary"
    assert access["metadata"]["status"] == "INTERNAL"
    assert access["trace_id"] == crash["trace_id"] != ""


async def test_success_passes_through(target: str) -> None:
    assert await call(target, b"hi") == b"ok:hi"


async def test_streaming_error_after_messages(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        responses = channel.unary_stream("/test.v1.Test/Stream")(b"")
        assert await responses.read() == b"first"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await responses.read()
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_port_in_use_names_the_port(target: str) -> None:
    from ossa_runtime.server import PortInUseError

    port = int(target.rsplit(":", 1)[1])
    host = ServiceHost("second")
    with pytest.raises(PortInUseError, match=str(port)):
        host.bind("127.0.0.1", port)


class Counting(ScopedInterceptor):
    """A layer that counts the calls it wraps (and skips methods named *Skip)."""

    def __init__(self) -> None:
        self.entered: list[str] = []

    def covers(self, method: str) -> bool:
        return not method.endswith("Skip")

    @asynccontextmanager
    async def scope(self, method: str, context: Any) -> AsyncIterator[None]:
        self.entered.append(method)
        yield


async def test_the_chain_wraps_a_method_once_and_every_call_runs_its_layers() -> None:
    layer = Counting()
    chain = Chain([layer])
    handlers = {name: grpc.unary_unary_rpc_method_handler(unary) for name in ("Unary", "Skip")}

    async def lookup(details: Any) -> Any:
        return handlers[details.method.rsplit("/", 1)[1]]

    def details(method: str) -> Any:
        return SimpleNamespace(method=method, invocation_metadata=())

    first = await chain.intercept_service(lookup, details("/t.T/Unary"))
    assert await chain.intercept_service(lookup, details("/t.T/Unary")) is first  # built once, reused
    assert await first.unary_unary(b"a", None) == b"ok:a"
    assert await first.unary_unary(b"b", None) == b"ok:b"
    assert layer.entered == ["/t.T/Unary", "/t.T/Unary"]  # the layer runs on every call
    skipped = await chain.intercept_service(lookup, details("/t.T/Skip"))
    assert await skipped.unary_unary(b"c", None) == b"ok:c" and len(layer.entered) == 2
    handlers["Unary"] = grpc.unary_unary_rpc_method_handler(unary)  # the service replaced its handler
    assert await chain.intercept_service(lookup, details("/t.T/Unary")) is not first
