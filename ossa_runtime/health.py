"""Dependency probes behind a service's grpc.health.v1 status.

A background task probes each dependency (PostgreSQL, Redis, ...) every `interval` seconds; the
service reports NOT_SERVING while any probe fails and SERVING again once all pass, without a
restart. Health checks are answered from this state, never by touching the busy request path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ossa_runtime.db import ping
from ossa_runtime.periodic import Periodic
from ossa_runtime.settings import Settings

log = logging.getLogger("ossa.health")

Probe = Callable[[], Awaitable[Any]]


@dataclass(frozen=True)
class ProbeResult:
    name: str
    ok: bool
    latency_ms: float
    error: str = ""


async def run_probe(name: str, probe: Probe, timeout: float) -> ProbeResult:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            await probe()
    except Exception as err:  # every failure is a health result, not an exception
        message = str(err) or type(err).__name__
        return ProbeResult(name, False, (time.perf_counter() - started) * 1000, message)
    return ProbeResult(name, True, (time.perf_counter() - started) * 1000)


class DependencyWatch:
    """Probe dependencies periodically and call `on_change(all_ok)` when the verdict flips."""

    def __init__(
        self,
        probes: dict[str, Probe],
        on_change: Callable[[bool], Awaitable[None]],
        *,
        interval: float,
        timeout: float,
    ) -> None:
        self.probes = probes
        self.on_change = on_change
        self.interval = interval
        self.timeout = timeout
        self.results: dict[str, ProbeResult] = {}
        self._healthy: bool | None = None
        self.job = Periodic("dependency-watch", interval, self.check_once)

    async def check_once(self) -> bool:
        results = await asyncio.gather(*(run_probe(name, probe, self.timeout) for name, probe in self.probes.items()))
        self.results = {r.name: r for r in results}
        healthy = all(r.ok for r in results)
        if healthy != self._healthy:
            failing = {r.name: r.error for r in results if not r.ok}
            level = logging.INFO if healthy else logging.WARNING
            log.log(level, "dependencies %s", "healthy" if healthy else "failing", extra={"metadata": failing})
            self._healthy = healthy
            await self.on_change(healthy)
        return healthy


def datastore_probes(pool: Any, redis: Any, settings: Settings) -> dict[str, Probe]:
    """Probes of a service's PostgreSQL pool and Redis client, by component name."""

    async def pg_ping() -> None:
        await ping(pool, settings.health_probe_timeout_seconds)

    async def redis_ping() -> None:
        await redis.ping()

    return {"postgres": pg_ping, "redis": redis_ping}


def datastore_watch(
    on_change: Callable[[bool], Awaitable[None]], pool: Any, redis: Any, settings: Settings
) -> DependencyWatch:
    """The usual watch of a service: SERVING while its PostgreSQL pool and Redis client answer."""
    return DependencyWatch(
        datastore_probes(pool, redis, settings),
        on_change,
        interval=settings.health_probe_seconds,
        timeout=settings.health_probe_timeout_seconds,
    )
