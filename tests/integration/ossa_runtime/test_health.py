"""A service's grpc.health.v1 status follows its dependencies without a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ossa_runtime.settings import Settings
from registry_svc.server import SERVICE_NAME, build_server
from tests.servers import start_valkey

pytestmark = pytest.mark.integration
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


async def wait_for(stub: health_pb2_grpc.HealthStub, want: int, seconds: float = 10.0) -> int:
    status = -1
    for _ in range(int(seconds / 0.1)):
        status = (await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))).status
        if status == want:
            break
        await asyncio.sleep(0.1)
    return status


async def test_redis_outage_flips_health(settings: Settings, tmp_path: Path) -> None:
    url, stop = start_valkey(tmp_path)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    host, bound = await build_server(settings.replace(redis_url=url), port=0)
    await host.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{bound}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            assert await wait_for(stub, SERVING) == SERVING
            stop()
            assert await wait_for(stub, NOT_SERVING) == NOT_SERVING
            _, stop = start_valkey(tmp_path, port)
            assert await wait_for(stub, SERVING) == SERVING
    finally:
        await host.stop()
        stop()
