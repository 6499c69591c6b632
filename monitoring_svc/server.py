"""Assemble the monitoring service: data stores, flusher, retention sweep, gRPC server."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from monitoring_svc.aggregates import AggregateCache
from monitoring_svc.buckets import MICROS
from monitoring_svc.buffer import MetricsBuffer
from monitoring_svc.flush import Flusher, now_micros
from monitoring_svc.ingest import Ingest, KnownAgents
from monitoring_svc.query import MetricsQuery
from monitoring_svc.servicer import MonitoringServicer
from monitoring_svc.store import MetricsStore
from ossa.monitoring.v1 import monitoring_pb2, monitoring_pb2_grpc
from ossa_runtime import tls
from ossa_runtime.auth.interceptor import AuthInterceptor
from ossa_runtime.db import create_pool
from ossa_runtime.health import datastore_watch
from ossa_runtime.periodic import Periodic
from ossa_runtime.ratelimit import RateLimitInterceptor
from ossa_runtime.redis import create_redis
from ossa_runtime.server import ServiceHost
from ossa_runtime.settings import Settings

SERVICE_NAME = monitoring_pb2.DESCRIPTOR.services_by_name["MonitoringService"].full_name
log = logging.getLogger("ossa.monitoring")


class Retention:
    """Deletes points older than the retention horizon, in bounded batches."""

    def __init__(self, store: MetricsStore, hours: int, every: float) -> None:
        self.store = store
        self.horizon = hours * 3600 * MICROS
        self.job = Periodic("metrics-retention", every, self.prune)

    async def prune(self) -> int:
        deleted = await self.store.prune(now_micros() - self.horizon)
        if deleted:
            log.info("pruned old metrics", extra={"metadata": {"deleted": deleted}})
        return deleted


@dataclass(frozen=True)
class Parts:
    """The pieces behind the servicer (tests reach in through these)."""

    store: MetricsStore
    flusher: Flusher
    query: MetricsQuery
    retention: Retention


async def build_server(settings: Settings, port: int | None = None) -> tuple[ServiceHost, int]:
    """Connect to PostgreSQL (migrating it) and Redis, wire the servicer, bind the port.

    The returned host is not started yet: `await host.start()` (tests) or `await host.serve()`.
    """
    host, bound, _ = await build_service(settings, port)
    return host, bound


async def build_service(settings: Settings, port: int | None = None) -> tuple[ServiceHost, int, Parts]:
    """`build_server`, also returning the service's parts."""
    auth = AuthInterceptor(settings)  # first: a missing JWT key fails before anything is opened
    pool = await create_pool(settings)
    redis = create_redis(settings)
    auth.attach(redis, pool)
    store = MetricsStore(pool)
    buffer = MetricsBuffer(redis, settings.metrics_buffer_max)
    cache = AggregateCache(redis, store)
    flusher = Flusher(buffer, store, cache, settings.metrics_flush_seconds, settings.metrics_flush_batch)
    retention = Retention(store, settings.metrics_retention_hours, settings.metrics_retention_sweep_seconds)
    ingest = Ingest(
        buffer, KnownAgents(store), settings.metrics_retention_hours, settings.metrics_flush_batch, flusher.wake
    )
    query = MetricsQuery(store, cache, settings.metrics_retention_hours)
    host = ServiceHost(
        "monitoring",
        auth=auth,
        ratelimit=RateLimitInterceptor(settings, redis),
        grace_seconds=settings.shutdown_grace_seconds,
    )
    host.add_service(
        SERVICE_NAME, monitoring_pb2_grpc.add_MonitoringServiceServicer_to_server, MonitoringServicer(ingest, query)
    )

    watch = datastore_watch(host.set_serving, pool, redis, settings)
    try:
        bound = host.bind(
            settings.host, settings.monitoring_port if port is None else port, tls.server_credentials(settings)
        )
    except BaseException:
        await redis.aclose()
        await pool.close()
        raise

    async def start_jobs() -> None:
        flusher.start()
        retention.job.start()
        watch.job.start()

    async def close() -> None:
        # The server has stopped taking calls: write what they buffered, then disconnect.
        await watch.job.stop()
        await retention.job.stop()
        await flusher.stop()
        await redis.aclose()
        await pool.close()

    host.on_start(start_jobs)
    host.on_stop(close)
    return host, bound, Parts(store, flusher, query, retention)


__all__ = ["SERVICE_NAME", "Parts", "build_server", "build_service"]
