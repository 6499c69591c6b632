"""Platform health for GET /api/v1/health: every component, probed in the background.

Datastores are pinged directly; services are asked over grpc.health.v1 (through their generated
stubs, never their modules). The report is refreshed every `health_probe_seconds` and answered
from memory, so a health check costs no I/O on the request path and stays fast under load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ossa.gateway.v1 import gateway_pb2 as pb
from ossa_runtime import tls
from ossa_runtime.health import ProbeResult, run_probe
from ossa_runtime.settings import Settings
from ossa_runtime.topology import BACKENDS

State = pb.HealthState


@dataclass(frozen=True)
class Component:
    name: str
    kind: str  # "service" or "datastore"
    target: str
    probe: Callable[[], Awaitable[Any]] | None  # None: not part of this deployment


def grpc_health_probe(channel: grpc.aio.Channel, service: str) -> Callable[[], Awaitable[None]]:
    stub = health_pb2_grpc.HealthStub(channel)

    async def probe() -> None:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise RuntimeError(f"reports {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")

    return probe


class HealthReporter:
    def __init__(self, components: list[Component], timeout: float, version_label: str = "") -> None:
        self.components = components
        # The release label (canary subsets): reported as <package version>+<label>.
        self.version = _version() + (f"+{version_label}" if version_label else "")
        self.timeout = timeout
        self.report = pb.GetHealthResponse(status=State.state_unspecified)

    async def refresh(self) -> pb.GetHealthResponse:
        probed = [c for c in self.components if c.probe is not None]
        results = await asyncio.gather(*(run_probe(c.name, c.probe, self.timeout) for c in probed if c.probe))
        by_name: dict[str, ProbeResult] = {r.name: r for r in results}
        now = datetime.now(UTC)
        report = pb.GetHealthResponse(version=self.version)
        report.checked_at.FromDatetime(now)
        for c in self.components:
            entry = report.components.add(name=c.name, kind=c.kind, target=c.target)
            result = by_name.get(c.name)
            if result is None:
                entry.state = State.disabled
                continue
            entry.state = State.healthy if result.ok else State.unhealthy
            entry.latency_ms = round(result.latency_ms, 3)
            entry.message = result.error
            entry.checked_at.FromDatetime(now)
        healthy = all(r.ok for r in results)
        report.status = State.healthy if healthy else State.unhealthy
        self.report = report
        return report


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ossa-platform")
    except PackageNotFoundError:
        return "unknown"


def service_components(settings: Settings, channels: dict[str, grpc.aio.Channel]) -> list[Component]:
    """The services the gateway fronts; those not installed in this deployment show as disabled."""
    out = []
    for info in BACKENDS:
        target = info.target(settings)
        probe = None
        if info.installed():
            channels[info.name] = tls.channel(settings, target)
            probe = grpc_health_probe(channels[info.name], info.grpc_service)
        out.append(Component(info.name, "service", target, probe))
    return out
