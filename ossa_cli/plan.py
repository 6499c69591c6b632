"""What `ossa up` runs, derived from Settings: the components in start order and the ports they bind.

Stages start one after the other (PostgreSQL, Redis, the gRPC services together, Envoy) and stop
in the reverse order.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from gateway_http.envoy_config.binary import find_envoy
from gateway_http.envoy_config.render import render_envoy_config
from ossa_cli.children import Component
from ossa_cli.embedded import command_prefix
from ossa_cli.ports import PortClaim, free_ports
from ossa_cli.postgres import EmbeddedPostgres
from ossa_cli.probes import all_of, connect_host, grpc_health, http_ok, readiness_tls
from ossa_cli.valkey import EmbeddedValkey
from ossa_runtime import tls
from ossa_runtime.metrics import MULTIPROC_ENV
from ossa_runtime.settings import FILE_SUFFIX, PREFIX, SECRET_FIELDS, Settings
from ossa_runtime.topology import ORCHESTRATOR, REGISTRY, SERVICES

HEALTH_PATH = "/api/v1/health"
ENVOY_ADMIN_HOST = "127.0.0.1"  # envoy/envoy.yaml binds its admin interface to loopback


@dataclass
class Plan:
    settings: Settings
    python: str
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedValkey | None = None
    stages: list[list[Component]] = field(default_factory=list)
    claims: list[PortClaim] = field(default_factory=list)
    # A service run as several workers: each worker's own port, which Envoy balances requests over.
    worker_ports: dict[str, list[int]] = field(default_factory=dict)

    @property
    def logs_dir(self) -> Path:
        return self.settings.data_dir / "logs"

    @property
    def envoy_dir(self) -> Path:
        return self.settings.data_dir / "envoy"

    def database_url(self) -> str:
        """The external URL, or the embedded server's (known once it has been prepared)."""
        return self.postgres.url() if self.postgres is not None else self.settings.database_url

    def redis_url(self) -> str:
        return self.redis.url() if self.redis is not None else self.settings.redis_url

    def child_settings(self) -> Settings:
        # The embedded server's URL carries its own password: OSSA_DB_PASSWORD is for a real server.
        password = self.settings.db_password if self.postgres is None else ""
        return self.settings.replace(database_url=self.database_url(), db_password=password, redis_url=self.redis_url())

    def service_env(self, name: str, worker: int = 0, workers: int = 1) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.child_settings().to_env())
        for secret in SECRET_FIELDS:  # the secret itself is in to_env(): a `_FILE` beside it would clash
            env.pop(f"{PREFIX}{secret.upper()}{FILE_SUFFIX}", None)
        env["OSSA_SERVICE_NAME"] = f"ossa-{name}"
        env["PYTHONUNBUFFERED"] = "1"
        # Several workers: prometheus_client's multiprocess mode, worker 0 serves /metrics for all.
        env["OSSA_WORKER_INDEX"] = str(worker)
        env.pop(MULTIPROC_ENV, None)
        env.pop(f"{PREFIX}WORKER_PORT", None)
        if name in self.worker_ports:
            env[f"{PREFIX}WORKER_PORT"] = str(self.worker_ports[name][worker])
        if workers > 1:
            env[MULTIPROC_ENV] = str(self.metrics_dir(name))
        return env

    def metrics_dir(self, name: str) -> Path:
        """Where a multi-worker service's processes keep their metrics (emptied at each start)."""
        return self.settings.data_dir / "metrics" / name

    def reset_metrics_dir(self, name: str) -> None:
        shutil.rmtree(self.metrics_dir(name), ignore_errors=True)
        self.metrics_dir(name).mkdir(parents=True)

    @property
    def gateway_url(self) -> str:
        host = connect_host(self.settings.gateway_host)
        scheme = "https" if tls.gateway_tls(self.settings) else "http"
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{self.settings.gateway_port}"


def port_fields() -> list[str]:
    """The settings that name a port (services, metrics, PostgreSQL, Redis, Envoy)."""
    return [f.name for f in fields(Settings) if f.name.endswith("_port")]


def configured_ports(s: Settings) -> set[int]:
    return {int(getattr(s, name)) for name in port_fields()}


def build_plan(settings: Settings, *, python: str = sys.executable) -> Plan:
    plan = Plan(settings=settings, python=python)
    s = settings
    # One stage each, so that they stop in the reverse order: Redis, then PostgreSQL.
    if not s.database_url:
        plan.postgres = EmbeddedPostgres.in_data_dir(s.data_dir, s.postgres_port)
        plan.stages.append([_embedded(plan.postgres, stop_timeout=60.0)])
        plan.claims.append(PortClaim("postgres", plan.postgres.host, s.postgres_port, "postgres_port"))
    if not s.redis_url:
        plan.redis = EmbeddedValkey.in_data_dir(s.data_dir, s.redis_port)
        plan.stages.append([_embedded(plan.redis, stop_timeout=60.0)])
        plan.claims.append(PortClaim("redis", plan.redis.host, s.redis_port, "redis_port"))

    services: list[Component] = []
    for info in (info for info in SERVICES if info.installed()):
        port = info.port(s)
        plan.claims.append(PortClaim(info.name, s.host, port, info.port_field))
        metrics_port = info.metrics_port(s)
        plan.claims.append(PortClaim(f"{info.name} metrics", s.host, metrics_port, info.metrics_port_field))
        copies = {REGISTRY: s.registry_workers, ORCHESTRATOR: s.orchestrator_workers}.get(info, 1)
        if copies > 1:  # the kernel would spread Envoy's few long-lived connections, not its requests
            # Not a port the settings name for anything else: those may be free now and bound later.
            ports = plan.worker_ports[info.name] = free_ports(s.host, copies, avoid=configured_ports(s))
            plan.claims += [PortClaim(f"{info.name}[{i + 1}]", s.host, p) for i, p in enumerate(ports)]
        for i in range(copies):
            name = info.name if copies == 1 else f"{info.name}[{i + 1}]"
            services.append(_service(plan, name, info.name, info.package, (port, metrics_port), (i, copies)))
    plan.stages.append(services)

    plan.claims.append(PortClaim("envoy", s.gateway_host, s.gateway_port, "gateway_port"))
    plan.claims.append(PortClaim("envoy admin", ENVOY_ADMIN_HOST, s.envoy_admin_port, "envoy_admin_port"))
    plan.stages.append([_envoy(plan)])
    return plan


def _embedded(server: EmbeddedPostgres | EmbeddedValkey, stop_timeout: float) -> Component:
    def argv() -> list[str]:
        return server.argv(die_with_parent=True)

    return Component(
        name=server.name,
        argv=argv,
        log_path=server.log_path,
        address=_address(server.host, server.port),
        ready=server.ping,
        prepare=server.prepare,
        stop_signal=server.stop_signal,
        stop_timeout=stop_timeout,
        recover=server.clear_leftovers if isinstance(server, EmbeddedPostgres) else None,
    )


def _service(
    plan: Plan, name: str, service: str, package: str, ports: tuple[int, int], worker: tuple[int, int] = (0, 1)
) -> Component:
    """One process of a service; `ports` are its gRPC and metrics ports, `worker` is (index, count)."""
    s = plan.settings
    port, metrics_port = ports
    index, workers = worker
    prefix = command_prefix(drop_root=False, die_with_parent=signal.SIGTERM)

    def env() -> Mapping[str, str]:
        return plan.service_env(service, index, workers)

    ready = grpc_health(_address(connect_host(s.host), port), settings=s)
    if index == 0:  # the process that serves /metrics (for all workers)
        ready = all_of(ready, http_ok(connect_host(s.host), metrics_port, "/metrics"))
    return Component(
        name=name,
        argv=lambda: [*prefix, plan.python, "-m", package],
        log_path=plan.logs_dir / f"{service}.log",
        address=_address(s.host, port),
        ready=ready,
        env=env,
        # Worker 0 starts first: it empties the directory the workers' multiprocess metrics go to.
        prepare=(lambda: plan.reset_metrics_dir(service)) if workers > 1 and index == 0 else None,
        stop_timeout=s.shutdown_grace_seconds + 5.0,
    )


def _envoy(plan: Plan) -> Component:
    s = plan.settings
    config: list[Path] = []

    def prepare() -> None:
        targets = {name: [(s.host, p) for p in ports] for name, ports in plan.worker_ports.items()}
        config[:] = [render_envoy_config(plan.child_settings(), plan.envoy_dir, targets=targets)]

    def argv() -> list[str]:
        # setpriv's parent-death signal: this Envoy build was seen to outlive a SIGKILLed supervisor.
        # Hot restart is never used; without it, several Envoys can run on one machine.
        prefix = command_prefix(drop_root=False, die_with_parent=signal.SIGTERM)
        return [*prefix, find_envoy(), "-c", str(config[0]), "--log-level", "warn", "--disable-hot-restart"]

    gateway = connect_host(s.gateway_host)
    ready = http_ok(ENVOY_ADMIN_HOST, s.envoy_admin_port, "/ready")
    if not s.tls_client_auth:  # (a required client certificate: the probe has none to show)
        gateway_tls = readiness_tls() if tls.gateway_tls(s) else None
        ready = all_of(ready, http_ok(gateway, s.gateway_port, HEALTH_PATH, ssl_context=gateway_tls))
    return Component(
        name="envoy",
        argv=argv,
        log_path=plan.logs_dir / "envoy.log",
        address=_address(s.gateway_host, s.gateway_port),
        ready=ready,
        prepare=prepare,
        stop_timeout=10.0,
    )


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
