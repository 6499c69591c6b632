"""Assemble the registry service: data stores, background jobs, gRPC server."""

from __future__ import annotations

from ossa.registry.v1 import registry_pb2, registry_pb2_grpc
from ossa_runtime import metrics, tls
from ossa_runtime.auth.interceptor import AuthInterceptor
from ossa_runtime.db import create_pool
from ossa_runtime.health import datastore_watch
from ossa_runtime.ratelimit import RateLimitInterceptor
from ossa_runtime.redis import create_redis
from ossa_runtime.server import ServiceHost
from ossa_runtime.settings import Settings
from registry_svc.heartbeats import HeartbeatWriter, OfflineSweeper
from registry_svc.presence import Presence
from registry_svc.servicer import AgentRegistryServicer
from registry_svc.store import AgentStore, row_to_dict

SERVICE_NAME = registry_pb2.DESCRIPTOR.services_by_name["AgentRegistryService"].full_name


async def build_server(settings: Settings, port: int | None = None) -> tuple[ServiceHost, int]:
    """Connect to PostgreSQL (migrating it) and Redis, wire the servicer, bind the port.

    The returned host is not started yet: `await host.start()` (tests) or `await host.serve()`.
    """
    auth = AuthInterceptor(settings)  # first: a missing JWT key fails before anything is opened
    pool = await create_pool(settings, service="registry")
    redis = create_redis(settings)
    auth.attach(redis, pool)
    linger = settings.batch_linger_ms / 1000
    store = AgentStore(pool, linger)
    presence = Presence(redis, settings.heartbeat_ttl_seconds, linger)
    beats = HeartbeatWriter(store, settings.heartbeat_flush_seconds)
    sweeper = OfflineSweeper(store, presence, settings.offline_after_seconds, settings.offline_sweep_seconds)
    host = ServiceHost(
        "registry",
        auth=auth,
        ratelimit=RateLimitInterceptor(settings, redis),
        reuse_port=settings.registry_workers > 1,
        grace_seconds=settings.shutdown_grace_seconds,
    )
    host.add_service(
        SERVICE_NAME,
        registry_pb2_grpc.add_AgentRegistryServiceServicer_to_server,
        AgentRegistryServicer(settings, store, presence, beats),
    )

    async def sample_agents() -> dict[str, float]:
        return {metrics.AGENTS_ACTIVE: await presence.count_live()}

    # Read from Redis at scrape time: the same answer from every registry process.
    host.metrics.add_gauges(metrics.SampledGauges([metrics.AGENTS_ACTIVE], sample_agents))

    watch = datastore_watch(host.set_serving, pool, redis, settings)
    try:
        bound = host.bind(
            settings.host, settings.registry_port if port is None else port, tls.server_credentials(settings)
        )
        host.bind_worker_port(settings)
        await presence.rebuild(row_to_dict(r) for r in await store.list_all())
    except BaseException:
        await redis.aclose()
        await pool.close()
        raise

    async def start_jobs() -> None:
        beats.start()
        sweeper.job.start()
        watch.job.start()

    async def close() -> None:
        await watch.job.stop()
        await sweeper.job.stop()
        await beats.stop()
        await redis.aclose()
        await pool.close()

    host.on_start(start_jobs)
    host.on_stop(close)
    return host, bound


__all__ = ["SERVICE_NAME", "build_server"]
