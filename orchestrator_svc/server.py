"""Assemble the orchestrator: data stores, lease sweeper, event hub, gRPC server."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator_svc import budgets, telemetry
from orchestrator_svc.approvals import Approvals
from orchestrator_svc.batches import Batches
from orchestrator_svc.claims import Claims
from orchestrator_svc.dispatch import Dispatcher
from orchestrator_svc.effects import Effects
from orchestrator_svc.engine import ExecutionEngine
from orchestrator_svc.events import EventHub
from orchestrator_svc.leases import Backoff, LeaseStore
from orchestrator_svc.matcher import search_matcher
from orchestrator_svc.mirror import QueueMirror
from orchestrator_svc.monitor_feed import MonitorFeed
from orchestrator_svc.router import Router
from orchestrator_svc.servicer import OrchestratorServicer
from orchestrator_svc.workflows import WorkflowStore
from ossa.monitoring.v1 import monitoring_pb2, monitoring_pb2_grpc
from ossa.orchestrator.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from ossa.registry.v1 import registry_pb2_grpc
from ossa.search.v1 import search_pb2_grpc
from ossa_runtime import tls
from ossa_runtime.auth.client import bearer_interceptors
from ossa_runtime.auth.interceptor import AuthInterceptor
from ossa_runtime.auth.permissions import AGENT_READ, AGENT_WRITE
from ossa_runtime.auth.service_token import ServiceToken
from ossa_runtime.db import create_pool
from ossa_runtime.health import datastore_watch
from ossa_runtime.periodic import Periodic
from ossa_runtime.ratelimit import RateLimitInterceptor
from ossa_runtime.redis import create_redis
from ossa_runtime.server import ServiceHost
from ossa_runtime.settings import Settings
from ossa_runtime.topology import MONITORING

SERVICE_NAME = orchestrator_pb2.DESCRIPTOR.services_by_name["OrchestratorService"].full_name
MIRROR_CHECK_EVERY = 10  # sweeps


class LeaseSweeper:
    """Returns tasks whose lease ran out to the queue (or fails them), and keeps Redis in step."""

    def __init__(self, engine: ExecutionEngine, leases: LeaseStore, effects: Effects, approvals: Approvals) -> None:
        self.engine = engine
        self.leases = leases
        self.effects = effects
        self.approvals = approvals
        self.sweeps = 0

    async def sweep(self) -> int:
        expired = 0
        for task_id in await self.leases.expired():
            outcome = await self.engine.expire(task_id)
            if outcome is not None:
                expired += 1
                self.effects.apply(outcome)
        overdue = await self.approvals.sweep()  # approval gates left undecided past their timeout
        overdue.merge(await budgets.sweep(self.engine.pool))  # executions past their budget's max_seconds
        if overdue.executions:
            self.effects.apply(overdue)
        if self.sweeps % MIRROR_CHECK_EVERY == 0:
            await self.effects.mirror.check()
        self.sweeps += 1
        return expired


async def build_server(settings: Settings, port: int | None = None) -> tuple[ServiceHost, int]:
    auth = AuthInterceptor(settings)  # first: a missing JWT key fails before anything is opened
    pool = await create_pool(settings, service="orchestrator")
    # Starts and claims: planned once per connection (ossa_runtime/db.py, GENERIC_PLANS). One flusher
    # per kind and the dispatcher's claims need few connections: half the main pool's at most.
    planned = await create_pool(
        settings, service="orchestrator", generic_plans=True, max_size=max(2, settings.db_pool_max // 2)
    )
    redis = create_redis(settings)
    auth.attach(redis, pool)
    # Asks the registry about agents with its own short-lived service token (agent:read only).
    registry_token = ServiceToken(settings, "orchestrator", [AGENT_READ])
    registry_channel = tls.channel(settings, settings.registry_target, interceptors=bearer_interceptors(registry_token))
    workflows = WorkflowStore(pool)
    backoff = Backoff(settings.retry_backoff_seconds, settings.retry_backoff_max_seconds)
    leases = LeaseStore(pool, backoff)
    engine = ExecutionEngine(pool, leases)

    def leased(rows: list[Any]) -> None:
        effects.leased(rows)

    claims = Claims(planned, settings.lease_quarantine_seconds)
    dispatcher = Dispatcher(claims, redis, pool, leased, settings.dispatch_poll_seconds)
    hub = EventHub(redis, dispatcher)
    effects = Effects(QueueMirror(redis, pool), hub, pool, dispatcher)
    linger = settings.batch_linger_ms / 1000
    batches = Batches(pool, workflows, engine, leases, effects, dispatcher, settings.lease_quarantine_seconds, planned,
                      linger)  # fmt: skip
    sweeper = LeaseSweeper(engine, leases, effects, Approvals(pool, workflows))
    sweeping = Periodic("lease-sweeper", settings.lease_sweep_seconds, sweeper.sweep)
    # Capability routing asks the search service which agents match (agent:read, like the registry).
    search_channel = tls.channel(settings, settings.search_target, interceptors=bearer_interceptors(registry_token))
    matcher = search_matcher(search_pb2_grpc.SearchServiceStub(search_channel))
    router = Router(pool, redis, effects.announce, matcher, settings.routing_min_score)
    routing = Periodic("capability-router", settings.routing_poll_seconds, router.route)
    router.kick = routing.kick
    # Task throughput, attempt durations and queue depth for the console's charts (agent:write only).
    feed_token = ServiceToken(settings, "orchestrator", [AGENT_WRITE])
    feed_auth = bearer_interceptors(feed_token)
    monitoring_channel = tls.channel(settings, MONITORING.target(settings), interceptors=feed_auth)
    monitoring = monitoring_pb2_grpc.MonitoringServiceStub(monitoring_channel)

    async def ingest(points: Sequence[monitoring_pb2.MetricPoint]) -> None:
        await monitoring.IngestMetrics(monitoring_pb2.IngestMetricsRequest(metrics=points), timeout=10)

    feed = MonitorFeed(pool, redis, ingest, settings.monitor_feed_seconds)
    effects.observers += [router.observe, feed.observe]
    feeding = Periodic("monitor-feed", settings.monitor_feed_seconds, feed.run)
    host = ServiceHost(
        "orchestrator",
        auth=auth,
        ratelimit=RateLimitInterceptor(settings, redis),
        reuse_port=settings.orchestrator_workers > 1,
        grace_seconds=settings.shutdown_grace_seconds,
    )
    registry = registry_pb2_grpc.AgentRegistryServiceStub(registry_channel)
    servicer = OrchestratorServicer(workflows, engine, batches, effects, dispatcher, registry)
    host.add_service(SERVICE_NAME, orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server, servicer)
    host.metrics.add_gauges(telemetry.queue_gauges(pool))

    watch = datastore_watch(host.set_serving, pool, redis, settings)

    async def close() -> None:
        await watch.job.stop()
        await dispatcher.stop()
        await batches.stop()
        await sweeping.stop()
        await routing.stop()
        await feeding.stop()
        await monitoring_channel.close(None)
        await search_channel.close(None)
        await hub.stop()
        await effects.stop()
        await registry_channel.close(None)
        await redis.aclose()
        await planned.close()
        await pool.close()

    try:
        bound = host.bind(
            settings.host, settings.orchestrator_port if port is None else port, tls.server_credentials(settings)
        )
        host.bind_worker_port(settings)
        await effects.mirror.check()
    except BaseException:
        await close()
        raise

    async def start_jobs() -> None:
        hub.start()
        dispatcher.start()
        sweeping.start()
        routing.start()
        feeding.start()
        watch.job.start()

    host.on_start(start_jobs)
    host.on_stop(close)
    return host, bound
