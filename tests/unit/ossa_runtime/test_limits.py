"""ossa_runtime.limits: the numbers fit together, and every grpc.aio server (ossa_runtime.server)
enforces the message and metadata limits with RESOURCE_EXHAUSTED, below them answering normally."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from ossa_runtime import limits
from ossa_runtime.server import ServiceHost, server_options


def test_limits_fit_together() -> None:
    # Envoy forwards a REST call's headers plus a copy of its path: the services must take both.
    assert 2 * limits.HTTP_MAX_HEADERS_KB * 1024 + 4096 < limits.GRPC_MAX_METADATA_BYTES
    # Every JSON document a REST body may carry fits in the body; gRPC messages hold the largest.
    assert limits.CONTEXT_MAX_BYTES <= limits.DEFINITION_MAX_BYTES < limits.HTTP_MAX_BODY_BYTES
    assert limits.OUTPUT_MAX_BYTES < limits.GRPC_MAX_MESSAGE_BYTES
    # An error reply stays far below the 60 KiB HTTP/2 header block Envoy accepts from a service.
    per_violation = limits.ERROR_FIELD_MAX_CHARS + limits.ERROR_DESCRIPTION_MAX_CHARS
    assert 3 * (limits.ERROR_MESSAGE_MAX_CHARS + limits.ERROR_MAX_VIOLATIONS * per_violation) < 60 * 1024


def test_server_options_carry_the_limits() -> None:
    options = dict(server_options(reuse_port=False))
    assert options["grpc.max_receive_message_length"] == limits.GRPC_MAX_MESSAGE_BYTES
    assert options["grpc.max_metadata_size"] == options["grpc.absolute_max_metadata_size"]
    assert options["grpc.absolute_max_metadata_size"] == limits.GRPC_MAX_METADATA_BYTES


async def echo(request: bytes, context: Any) -> bytes:
    return str(len(request)).encode()


@pytest.fixture
async def target() -> AsyncIterator[str]:
    host = ServiceHost("limits-test", grace_seconds=0.1)
    handlers = {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    host.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.v1.Limits", handlers),))
    port = host.bind("127.0.0.1", 0)
    await host.start()
    yield f"127.0.0.1:{port}"
    await host.stop()


async def call(target: str, payload: bytes, metadata: tuple[tuple[str, str], ...] = ()) -> bytes:
    async with grpc.aio.insecure_channel(target) as channel:
        result: bytes = await channel.unary_unary("/test.v1.Limits/Echo", None, None)(
            payload, metadata=metadata, timeout=30
        )
        return result


async def test_message_size(target: str) -> None:
    assert (
        await call(target, b"x" * (limits.GRPC_MAX_MESSAGE_BYTES - 64))
        == str(limits.GRPC_MAX_MESSAGE_BYTES - 64).encode()
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(target, b"x" * (limits.GRPC_MAX_MESSAGE_BYTES + 1))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (err.value.details() or "")
    assert await call(target, b"still here") == b"10"


async def test_metadata_size(target: str) -> None:
    # What Envoy may forward for a REST call at its header limit: always accepted, never at random.
    near = "a" * (2 * limits.HTTP_MAX_HEADERS_KB * 1024)
    for _ in range(5):
        assert await call(target, b"", (("x-big", near),)) == b"0"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(target, b"", (("x-big", "a" * limits.GRPC_MAX_METADATA_BYTES),))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
