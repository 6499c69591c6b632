"""The gateway's own gRPC service (ossa.gateway.v1.GatewayService), transcoded by Envoy."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import grpc

from auth_svc import servicer as auth_service
from gateway_http.card import platform_card
from gateway_http.envoy_config.descriptor import descriptor_bytes
from gateway_http.health import Component, HealthReporter, service_components
from ossa.gateway.v1 import gateway_pb2 as pb
from ossa.gateway.v1 import gateway_pb2_grpc
from ossa.registry.v1 import card_pb2
from ossa_runtime import tls
from ossa_runtime.auth.interceptor import AuthInterceptor
from ossa_runtime.db import create_pool
from ossa_runtime.health import datastore_probes
from ossa_runtime.http import SERVICE_UNAVAILABLE, set_http_status
from ossa_runtime.periodic import Periodic
from ossa_runtime.ratelimit import RateLimitInterceptor
from ossa_runtime.redis import create_redis
from ossa_runtime.server import ServiceHost
from ossa_runtime.settings import Settings

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GatewayService"].full_name


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(self, reporter: HealthReporter, card: card_pb2.AgentCard) -> None:
        self.reporter = reporter
        self.card = card

    async def GetHealth(
        self, request: pb.GetHealthRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetHealthResponse:
        report = self.reporter.report
        if report.status != pb.HealthState.healthy:
            await set_http_status(context, SERVICE_UNAVAILABLE)
        return report

    async def GetPlatformCard(
        self, request: pb.GetPlatformCardRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetPlatformCardResponse:
        return pb.GetPlatformCardResponse(card=self.card)


def _netloc(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


async def build_server(settings: Settings, port: int | None = None) -> tuple[ServiceHost, int]:
    auth = AuthInterceptor(settings)  # first: a missing JWT key fails before anything is opened
    pool = await create_pool(settings, service="gateway")
    redis = create_redis(settings)
    auth.attach(redis, pool)
    channels: dict[str, grpc.aio.Channel] = {}

    probes = datastore_probes(pool, redis, settings)
    components = [
        Component("postgres", "datastore", _netloc(settings.database_url), probes["postgres"]),
        Component("redis", "datastore", _netloc(settings.redis_url), probes["redis"]),
        *service_components(settings, channels),
    ]
    reporter = HealthReporter(components, settings.health_probe_timeout_seconds, settings.version_label)
    refresher = Periodic("health-report", settings.health_probe_seconds, reporter.refresh)
    host = ServiceHost(
        "gateway",
        auth=auth,
        ratelimit=RateLimitInterceptor(settings, redis),
        grace_seconds=settings.shutdown_grace_seconds,
    )
    host.add_service(
        SERVICE_NAME,
        gateway_pb2_grpc.add_GatewayServiceServicer_to_server,
        GatewayServicer(reporter, platform_card(settings, descriptor_bytes(), reporter.version)),
    )
    auth_service.install(host, settings, pool, redis, auth)  # ossa.auth.v1.AuthService: login, API keys

    async def close() -> None:
        await refresher.stop()
        for channel in channels.values():
            await channel.close(None)
        await redis.aclose()
        await pool.close()

    host.on_stop(close)
    try:
        bound = host.bind(
            settings.host, settings.gateway_grpc_port if port is None else port, tls.server_credentials(settings)
        )
    except BaseException:
        await close()
        raise

    async def start_jobs() -> None:
        await reporter.refresh()
        refresher.start()

    host.on_start(start_jobs)
    return host, bound
