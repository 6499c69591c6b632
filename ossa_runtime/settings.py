"""Platform settings: one frozen dataclass, read once from `OSSA_*` environment variables.

Services call `Settings.from_env()` at start-up; tests pass a dict (`Settings.from_env({...})`).
Every field has a default that runs the platform on one machine with embedded servers.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

import platformdirs

PREFIX = "OSSA_"


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("ossa", appauthor=False))


@dataclass(frozen=True)
class Settings:
    """Everything a service or the `ossa` CLI needs to know about its environment."""

    # Where embedded servers keep their data, logs and generated config.
    data_dir: Path = field(default_factory=default_data_dir)
    # Real servers: when set, nothing embedded is started for them.
    database_url: str = ""
    redis_url: str = ""
    # Addresses. Internal services bind `host`; Envoy binds `gateway_host`.
    host: str = "127.0.0.1"
    gateway_host: str = "0.0.0.0"
    gateway_port: int = 3100
    envoy_admin_port: int = 9901
    gateway_grpc_port: int = 3010
    registry_port: int = 3011
    orchestrator_port: int = 3012
    monitoring_port: int = 3013
    # Prometheus /metrics over HTTP on `host`, one port per service (ossa_runtime.metrics).
    gateway_metrics_port: int = 9110
    registry_metrics_port: int = 9111
    orchestrator_metrics_port: int = 9112
    monitoring_metrics_port: int = 9113
    postgres_port: int = 5433
    redis_port: int = 6382
    # How many processes serve the registry (they share its port with SO_REUSEPORT).
    registry_workers: int = 1
    # How many orchestrator processes run (they share its port; PostgreSQL arbitrates their claims).
    orchestrator_workers: int = 1
    # Which of its service's worker processes this is, 0-based (`ossa up` sets it per process).
    worker_index: int = 0
    # Logging: level and the service name written in every line.
    log_level: str = "info"
    service_name: str = "ossa"
    # gRPC server lifecycle.
    shutdown_grace_seconds: float = 5.0
    db_pool_min: int = 1
    db_pool_max: int = 10
    # Heartbeats: the TTL of `ossa:agent:{id}:heartbeat`, the interval agents are asked to beat at,
    # how long without a beat before an agent is marked offline, how often that is checked, and how
    # often buffered beats are written to PostgreSQL.
    heartbeat_ttl_seconds: int = 60
    heartbeat_interval_seconds: int = 10
    offline_after_seconds: int = 60
    offline_sweep_seconds: float = 15.0
    heartbeat_flush_seconds: float = 1.0
    # Orchestrator: how often idle lease streams look for work, expired leases are swept and the
    # Redis queue mirror is checked; retry backoff (doubling from the base up to the cap).
    dispatch_poll_seconds: float = 0.25
    lease_sweep_seconds: float = 1.0
    retry_backoff_seconds: float = 1.0
    retry_backoff_max_seconds: float = 60.0
    # An agent that let a lease expire (dead, hung or partitioned) gets no new work for this long.
    lease_quarantine_seconds: float = 30.0
    # Metrics (monitoring_svc): ingested points wait in Redis until the next flush, which writes
    # up to `metrics_flush_batch` of them to PostgreSQL at once, every `metrics_flush_seconds` or
    # as soon as a batch is full; ingest is refused (503) while `metrics_buffer_max` points wait.
    # Points older than `metrics_retention_hours` are refused, and pruned every sweep.
    metrics_flush_seconds: float = 1.0
    metrics_flush_batch: int = 5000
    metrics_buffer_max: int = 1_000_000
    metrics_retention_hours: int = 168
    metrics_retention_sweep_seconds: float = 60.0
    # Dependency probes behind grpc.health.v1 and GET /api/v1/health.
    health_probe_seconds: float = 1.0
    health_probe_timeout_seconds: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read `OSSA_<FIELD>` variables from `env` (default: os.environ); `overrides` win."""
        source = os.environ if env is None else env
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            var = PREFIX + f.name.upper()
            if var in source and source[var] != "":
                values[f.name] = _parse(var, source[var], hints[f.name])
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def replace(self, **changes: Any) -> Settings:
        new = dataclasses.replace(self, **changes)
        new.validate()
        return new

    def validate(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_port") and not 0 <= value <= 65535:
                raise SettingsError(f"{PREFIX}{f.name.upper()}={value}: a port must be 0-65535")
            if f.name.endswith(("_seconds", "_workers", "_min", "_max", "_hours", "_batch")) and value <= 0:
                raise SettingsError(f"{PREFIX}{f.name.upper()}={value}: must be positive")
        if self.db_pool_min > self.db_pool_max:
            raise SettingsError(f"{PREFIX}DB_POOL_MIN={self.db_pool_min} exceeds {PREFIX}DB_POOL_MAX")
        if self.log_level.lower() not in {"debug", "info", "warning", "error"}:
            raise SettingsError(f"{PREFIX}LOG_LEVEL={self.log_level}: use debug, info, warning or error")

    # Derived addresses -------------------------------------------------------------------------

    @property
    def registry_target(self) -> str:
        return f"{self.host}:{self.registry_port}"

    @property
    def gateway_grpc_target(self) -> str:
        return f"{self.host}:{self.gateway_grpc_port}"

    def to_env(self) -> dict[str, str]:
        """The `OSSA_*` variables that reproduce these settings in a child process."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[PREFIX + f.name.upper()] = str(value)
        return out


def _parse(var: str, raw: str, kind: Any) -> Any:
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered not in {"1", "0", "true", "false", "yes", "no"}:
                raise ValueError(raw)
            return lowered in {"1", "true", "yes"}
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is Path:
            return Path(raw).expanduser()
        return raw
    except ValueError:
        name = getattr(kind, "__name__", str(kind))
        raise SettingsError(f"{var}={raw!r} is not a valid {name}") from None
