"""Readiness probes used by the supervisor. Each returns when ready and raises otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ossa_runtime import tls
from ossa_runtime.settings import Settings

Probe = Callable[[], Awaitable[None]]


def connect_host(host: str) -> str:
    """An address to dial for a server bound to `host` (wildcards mean loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def grpc_health(target: str, service: str = "", timeout: float = 2.0, settings: Settings | None = None) -> Probe:
    """grpc.health.v1 Check must answer SERVING (dialled with TLS when `settings` configure it)."""

    async def probe() -> None:
        async with tls.channel(settings, target) if settings else grpc.aio.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            raise RuntimeError(f"health check answered {name}")

    return probe


def readiness_tls() -> ssl.SSLContext:
    """TLS for a readiness probe of our own listener: encrypted, not verified (it sends nothing
    secret and the certificate may not name the loopback address it dials)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def http_status(
    host: str, port: int, path: str, timeout: float = 2.0, ssl_context: ssl.SSLContext | None = None
) -> int:
    """The status code of `GET path` over HTTP/1.1, HTTPS with `ssl_context` (only asyncio needed)."""

    async def get() -> int:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=ssl_context, server_hostname=host if ssl_context else None
        )
        try:
            request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
            writer.write(request.encode("ascii"))
            await writer.drain()
            status_line = await reader.readline()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        parts = status_line.split()
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise ConnectionError(f"not an HTTP reply: {status_line!r}")
        return int(parts[1])

    async with asyncio.timeout(timeout):
        return await get()


def http_ok(host: str, port: int, path: str, timeout: float = 2.0, ssl_context: ssl.SSLContext | None = None) -> Probe:
    """`GET path` must answer 200."""

    async def probe() -> None:
        status = await http_status(host, port, path, timeout, ssl_context)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")

    return probe


def all_of(*probes: Probe) -> Probe:
    """Ready when every probe passes, checked in order."""

    async def probe() -> None:
        for p in probes:
            await p()

    return probe


async def probe_unless_exited(probe: Probe, exited: asyncio.Future[Any], timeout: float) -> None:
    """Run `probe` for at most `timeout` seconds (TimeoutError), returning early when the process it
    probes has exited (`exited` is done: the caller looks at that)."""
    attempt = asyncio.ensure_future(probe())
    try:
        await asyncio.wait({attempt, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        attempt.cancel()
        await asyncio.gather(attempt, return_exceptions=True)
    if exited.done():
        return
    if attempt.cancelled():
        raise TimeoutError()
    attempt.result()


def describe(err: BaseException) -> str:
    """A failed probe's error in a few words."""
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, grpc.aio.AioRpcError):
        return f"gRPC {err.code().name}: {err.details()}"
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
