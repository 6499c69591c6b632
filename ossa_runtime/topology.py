"""The platform's gRPC services, named once: component, Python package, port setting, gRPC service.

`ossa up` starts the installed ones; the gateway's health report asks each of them. The
orchestrator, monitoring and search services join when their packages are installed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from ossa_runtime.settings import Settings


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    package: str
    port_field: str
    grpc_service: str
    optional: bool = False

    def port(self, settings: Settings) -> int:
        return int(getattr(settings, self.port_field))

    @property
    def host_field(self) -> str:
        """The Settings field naming where other processes dial it (`registry_host`, ...; empty = host)."""
        return self.port_field.removesuffix("_port") + "_host"

    def dial_host(self, settings: Settings) -> str:
        return str(getattr(settings, self.host_field)) or settings.host

    def target(self, settings: Settings) -> str:
        """host:port to dial it at."""
        return f"{self.dial_host(settings)}:{self.port(settings)}"

    @property
    def metrics_port_field(self) -> str:
        """The Settings field of its Prometheus /metrics port (`registry_metrics_port`, ...)."""
        return f"{self.name}_metrics_port"

    def metrics_port(self, settings: Settings) -> int:
        return int(getattr(settings, self.metrics_port_field))

    def installed(self) -> bool:
        return not self.optional or importlib.util.find_spec(self.package) is not None


REGISTRY = ServiceInfo("registry", "registry_svc", "registry_port", "ossa.registry.v1.AgentRegistryService")
GATEWAY = ServiceInfo("gateway", "gateway_http", "gateway_grpc_port", "ossa.gateway.v1.GatewayService")
ORCHESTRATOR = ServiceInfo(
    "orchestrator", "orchestrator_svc", "orchestrator_port", "ossa.orchestrator.v1.OrchestratorService", True
)
MONITORING = ServiceInfo(
    "monitoring", "monitoring_svc", "monitoring_port", "ossa.monitoring.v1.MonitoringService", True
)
SEARCH = ServiceInfo("search", "search_svc", "search_port", "ossa.search.v1.SearchService", True)
SERVICES = (REGISTRY, GATEWAY, ORCHESTRATOR, MONITORING, SEARCH)
# The domain services behind the gateway (what its health report covers besides the datastores).
BACKENDS = (REGISTRY, ORCHESTRATOR, MONITORING, SEARCH)
