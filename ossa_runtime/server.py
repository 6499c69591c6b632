"""Server lifecycle shared by every service: grpc.aio server, health, reflection, interceptors,
port binding with clear errors, and graceful, idempotent shutdown on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ossa_runtime import eventloop, heap, limits, tls, tracing
from ossa_runtime.interceptors import default_interceptors
from ossa_runtime.logging import configure_logging
from ossa_runtime.metrics import serves_metrics
from ossa_runtime.metrics_http import MetricsEndpoint
from ossa_runtime.redact import install_log_redaction
from ossa_runtime.settings import Settings, SettingsError
from ossa_runtime.topology import SERVICES

log = logging.getLogger("ossa.server")

Closer = Callable[[], Awaitable[None]]


class PortInUseError(RuntimeError):
    """The port cannot be bound; the message names it."""


def server_options(reuse_port: bool) -> list[tuple[str, Any]]:
    # grpcio turns SO_REUSEPORT on by default, which lets a second process silently share a port.
    return [
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Input limits (ossa_runtime/limits.py): larger messages are RESOURCE_EXHAUSTED; metadata
        # beyond the soft limit would be refused at random, so both limits are the same.
        ("grpc.max_receive_message_length", limits.GRPC_MAX_MESSAGE_BYTES),
        ("grpc.max_metadata_size", limits.GRPC_MAX_METADATA_BYTES),
        ("grpc.absolute_max_metadata_size", limits.GRPC_MAX_METADATA_BYTES),
    ]


class ServiceHost:
    """One gRPC server process: register services, bind, serve until a signal, stop cleanly."""

    def __init__(
        self,
        name: str,
        *,
        interceptors: Sequence[Any] | None = None,
        auth: Any = None,
        ratelimit: Any = None,
        reuse_port: bool = False,
        grace_seconds: float = 5.0,
    ) -> None:
        self.name = name
        self.grace_seconds = grace_seconds
        self.auth = auth
        self.server = grpc.aio.server(
            interceptors=list(default_interceptors(name, auth, ratelimit) if interceptors is None else interceptors),
            options=server_options(reuse_port),
        )
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        # /metrics over HTTP: services add their gauges; it listens once `metrics.listen()` was called.
        self.metrics = MetricsEndpoint(name)
        self.service_names: list[str] = []
        self._closers: list[Closer] = []
        self._starters: list[Closer] = []
        self._stopping: asyncio.Task[None] | None = None

    def add_service(self, full_name: str, adder: Callable[[Any, grpc.aio.Server], None], servicer: Any) -> None:
        adder(servicer, self.server)
        self.service_names.append(full_name)

    def on_start(self, starter: Closer) -> None:
        """Run `starter` once the server is listening (background jobs)."""
        self._starters.append(starter)

    def on_stop(self, closer: Closer) -> None:
        """Run `closer` after the server has stopped (in reverse order of registration)."""
        self._closers.append(closer)

    def bind(self, host: str, port: int, credentials: grpc.ServerCredentials | None = None) -> int:
        """Listen on host:port, with TLS when `credentials` are given (ossa_runtime.tls)."""
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            if credentials is None:
                bound = self.server.add_insecure_port(address)
            else:
                bound = self.server.add_secure_port(address, credentials)
        except RuntimeError as err:
            raise PortInUseError(f"{self.name}: cannot listen on {address}: port {port} is in use") from err
        if bound == 0:
            raise PortInUseError(f"{self.name}: cannot listen on {address}: port {port} is in use")
        return bound

    def bind_worker_port(self, settings: Settings) -> None:
        """Also listen on this worker's own port (OSSA_WORKER_PORT), if it has one: Envoy lists each
        worker of a service as an endpoint and balances requests over them (ossa_cli/plan.py)."""
        if settings.worker_port:
            self.bind(settings.host, settings.worker_port, tls.server_credentials(settings))

    async def start(self) -> None:
        try:
            await self.metrics.start()  # first: a busy metrics port fails before anything is served
        except OSError as err:
            raise PortInUseError(
                f"{self.name}: cannot serve /metrics on {self.metrics.where}: {err.strerror or err}"
            ) from err
        reflection.enable_server_reflection(
            [*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        await self.server.start()
        for starter in self._starters:
            await starter()
        await self.set_serving(True)

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ("", *self.service_names):
            await self.health.set(service, status)

    async def stop(self) -> None:
        """Idempotent: the first call drains and closes, later calls wait for it."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        log.info("shutting down", extra={"metadata": {"grace_seconds": self.grace_seconds}})
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.grace_seconds)
        await self.metrics.stop()  # before the closers: its gauges read their pools
        closers = list(reversed(self._closers))
        stop_auth = getattr(self.auth, "aclose", None)  # its revocation listener, before Redis closes
        if stop_auth is not None:
            closers.insert(0, stop_auth)
        for closer in closers:
            try:
                await closer()
            except Exception:
                log.exception("error while closing")

    async def serve(self) -> None:
        """Start, then run until SIGTERM/SIGINT, then stop gracefully."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        log.info("serving", extra={"metadata": {"services": self.service_names}})
        waiter = asyncio.ensure_future(self.server.wait_for_termination())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        await self.stop()
        waiter.cancel()


def run_main(service: str, build: Callable[[Settings], Awaitable[tuple[ServiceHost, int]]]) -> int:
    """The `main()` of every service: settings from OSSA_*, JSON logs, serve until a signal."""
    try:
        settings = Settings.from_env()
    except SettingsError as err:
        print(f"{service}: {err}", file=sys.stderr)
        return 2
    configure_logging(f"ossa-{service}", settings.log_level)
    install_log_redaction(settings)  # no secret or bearer token in any log line
    tracing.configure(settings, f"ossa-{service}")

    async def run() -> None:
        host, _ = await build(settings)
        heap.settle()
        info = next((i for i in SERVICES if i.name == service), None)
        if info is not None and serves_metrics(settings.worker_index):
            host.metrics.listen(settings.host, info.metrics_port(settings))
        await host.serve()

    try:
        eventloop.run(run(), settings.event_loop)
    except (PortInUseError, SettingsError) as err:  # SettingsError: e.g. auth on without a JWT key
        print(f"{service}: {err}" if isinstance(err, SettingsError) else str(err), file=sys.stderr)
        return 2
    finally:
        tracing.shutdown()  # sends the spans still batched
    return 0
