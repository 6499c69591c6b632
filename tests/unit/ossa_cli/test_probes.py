"""ossa_cli.probes against small in-process servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ossa_cli.ports import free_port
from ossa_cli.probes import all_of, connect_host, grpc_health, http_ok, http_status


@pytest.fixture
async def http_server() -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        status = b"200 OK" if request_line.split()[1] == b"/ready" else b"503 Service Unavailable"
        writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield int(server.sockets[0].getsockname()[1])


async def test_http_status_and_http_ok(http_server: int) -> None:
    assert await http_status("127.0.0.1", http_server, "/ready") == 200
    assert await http_status("127.0.0.1", http_server, "/other") == 503
    await http_ok("127.0.0.1", http_server, "/ready")()
    with pytest.raises(RuntimeError, match="GET /other answered 503"):
        await all_of(http_ok("127.0.0.1", http_server, "/ready"), http_ok("127.0.0.1", http_server, "/other"))()


async def test_http_probe_of_a_closed_port_fails() -> None:
    with pytest.raises(OSError):
        await http_ok("127.0.0.1", free_port(), "/ready")()


async def test_grpc_health_probe() -> None:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        probe = grpc_health(f"127.0.0.1:{port}")
        await servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        with pytest.raises(RuntimeError, match="NOT_SERVING"):
            await probe()
        await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        await probe()
    finally:
        await server.stop(None)


def test_wildcards_are_dialled_on_loopback() -> None:
    assert connect_host("0.0.0.0") == "127.0.0.1"
    assert connect_host("::") == "::1"
    assert connect_host("10.1.2.3") == "10.1.2.3"
