"""`Agent`: register with the platform, heartbeat, hold the Work stream and run tasks with a handler.

agent = Agent(name="summarizer-1", capabilities=["summarize"], slots=4, gateway="127.0.0.1:3100")

@agent.handler
async def summarize(task_input: dict) -> dict: ...

agent.run()  # blocks until SIGINT/SIGTERM; or `await agent.serve()` and `agent.stop()`
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any, TypeVar

import grpc
from google.protobuf import struct_pb2

from ossa.orchestrator.v1 import orchestrator_pb2_grpc
from ossa.registry.v1 import registry_pb2 as reg
from ossa.registry.v1 import registry_pb2_grpc
from ossa_runtime import eventloop, tracing
from ossa_runtime.auth.client import bearer_interceptors
from ossa_runtime.tls import client_credentials
from ossa_sdk.backoff import Backoff
from ossa_sdk.handlers import Handler, resolve_handler
from ossa_sdk.presence import Heartbeats, Registration
from ossa_sdk.tasks import TaskPool
from ossa_sdk.work import WorkStream

log = logging.getLogger("ossa.sdk")
H = TypeVar("H", bound=Handler)

DEFAULT_GATEWAY = "127.0.0.1:3100"
# The channel's own reconnect backoff follows the SDK's (gRPC's default grows to 120 s).
TOKEN_ENV = "OSSA_TOKEN"  # the bearer token when `token=` is not given
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 5000)]
AGENT_TYPES = tuple(name for name, _ in reg.AgentType.Value.items() if name != "type_unspecified")


def _struct(value: Mapping[str, Any] | None) -> struct_pb2.Struct | None:
    if value is None:
        return None
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def _check_slots(slots: int) -> None:
    if not 1 <= slots <= 1000:
        raise ValueError(f"slots must be 1-1000, not {slots}")


class Agent:
    """One agent: a name, capabilities, a number of slots and a handler for its tasks.

    `gateway` is the platform's gRPC address (Envoy); `registry` / `orchestrator` override it to
    reach those services directly. `tls` / `tls_ca_file` (and `tls_cert_file` + `tls_key_file`
    for a client certificate) dial them over TLS. `token` (default: $OSSA_TOKEN) is the bearer JWT
    sent on every call. `heartbeat_interval` overrides the interval the registry asks
    for; `grace_seconds` is how long `stop()` lets running handlers finish; `report_timeout` is
    how long a result is retried while the orchestrator is unavailable.
    """

    def __init__(
        self,
        name: str,
        *,
        type: str = "worker",
        capabilities: Sequence[str] = (),
        slots: int = 1,
        version: str = "1.0.0",
        metadata: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        handler: Handler | str | None = None,
        gateway: str = DEFAULT_GATEWAY,
        registry: str | None = None,
        orchestrator: str | None = None,
        tls: bool = False,
        tls_ca_file: str | None = None,
        tls_cert_file: str | None = None,
        tls_key_file: str | None = None,
        token: str | None = None,
        heartbeat_interval: float | None = None,
        grace_seconds: float = 30.0,
        report_timeout: float = 30.0,
        backoff: Callable[[], Backoff] = Backoff,
    ) -> None:
        if type not in AGENT_TYPES:
            raise ValueError(f"unknown agent type {type!r} (one of {', '.join(AGENT_TYPES)})")
        _check_slots(slots)
        self.name = name
        self.type = type
        self.version = version
        self.capabilities = list(capabilities)
        self.metadata = dict(metadata) if metadata is not None else None
        self.config = dict(config) if config is not None else None
        self.registry_target = registry or gateway
        self.orchestrator_target = orchestrator or gateway
        # TLS to the gateway: on with `tls` or any file (CA to verify it, else the system's roots;
        # a client certificate when the gateway requires one).
        self._credentials = (
            client_credentials(tls_ca_file, tls_cert_file, tls_key_file)
            if tls or tls_ca_file or tls_cert_file or tls_key_file
            else None
        )
        # The bearer JWT sent on every call (`ossa token create --type agent --sub <name> --role operator`).
        self._token = os.environ.get(TOKEN_ENV, "") if token is None else token
        self.heartbeat_interval = heartbeat_interval
        self.grace_seconds = grace_seconds
        self.report_timeout = report_timeout
        self._backoff = backoff
        self._slots = slots
        self._handler: Handler | None = None
        if handler is not None:
            self._handler = resolve_handler(handler) if isinstance(handler, str) else handler
        self._registration: Registration | None = None
        self._pool: TaskPool | None = None
        self._work: WorkStream | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()  # stop() may come before serve() or from another thread
        self._stop_event = asyncio.Event()
        self._force = asyncio.Event()
        self._beat_now = asyncio.Event()
        self._was_busy = False
        self._served = False
        self._fatal: BaseException | None = None

    # Configuration -------------------------------------------------------------------------------

    def handler(self, fn: H) -> H:
        """Decorator: use `fn` (sync or async; task input dict → output) for every task."""
        self._handler = fn
        return fn

    @property
    def id(self) -> str | None:
        """The registry's id for this agent, once registered."""
        return self._registration.id if self._registration is not None else None

    @property
    def slots(self) -> int:
        return self._slots

    @property
    def running(self) -> int:
        """How many handlers are running now."""
        return self._pool.running if self._pool is not None else 0

    async def set_slots(self, slots: int) -> None:
        """Run up to `slots` tasks at once from now on (announced on the Work stream)."""
        _check_slots(slots)
        self._slots = slots
        if self._work is not None:
            await self._work.set_slots(slots)
            self._load_changed()

    # Lifecycle ---------------------------------------------------------------------------------------

    def run(self, install_signal_handlers: bool = True) -> None:
        """Serve until stop(), SIGINT or SIGTERM (a second signal stops running handlers at once), on
        uvloop when it is installed (OSSA_EVENT_LOOP=asyncio: asyncio's own loop)."""
        eventloop.run(self._run(install_signal_handlers), os.environ.get("OSSA_EVENT_LOOP") or "auto")

    async def _run(self, install_signal_handlers: bool) -> None:
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM) if install_signal_handlers else ()
        for sig in signals:
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            await self.serve()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        again = self._stopping.is_set()
        log.info("%s: %s", sig.name, "stopping running handlers now" if again else "stopping (again to hurry)")
        self.stop(force=again)

    def stop(self, force: bool = False) -> None:
        """Stop gracefully: take no new work, let running handlers finish (up to grace_seconds), disconnect.

        Idempotent; safe from signal handlers, other tasks and other threads; before serve() it makes
        serve() return at once. `force` stops running handlers without waiting.
        """
        self._stopping.set()
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def wake() -> None:
            self._stop_event.set()
            if force:
                self._force.set()

        try:
            in_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            in_loop = False
        if in_loop:
            wake()
        else:
            with suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(wake)

    async def serve(self) -> None:
        """Register, heartbeat and take work until stop(); raises RegistrationError if the registry refuses."""
        if self._served:
            raise RuntimeError("an Agent serves once; create a new one")
        if self._handler is None:
            raise ValueError("no handler: decorate a function with @agent.handler or pass handler=")
        self._served = True
        self._loop = asyncio.get_running_loop()
        if self._stopping.is_set():
            self._stop_event.set()
        interceptors = [*tracing.client_interceptors(), *bearer_interceptors(self._token)]
        channels = {t: _channel(t, self._credentials, interceptors) for t in self._targets()}
        registry = registry_pb2_grpc.AgentRegistryServiceStub(channels[self.registry_target])
        orchestrator = orchestrator_pb2_grpc.OrchestratorServiceStub(channels[self.orchestrator_target])
        self._registration = registration = Registration(registry, self._create_request(), self._backoff)
        self._pool = pool = TaskPool(orchestrator, self._handler, self._slots, self._load_changed, self.report_timeout)
        self._work = work = WorkStream(orchestrator, pool, self.capabilities, registration.agent_id, self._backoff)
        pool.send = work.report  # results and renewals ride on the Work stream when it carries them
        registration.on_new_id = lambda _: work.reopen()
        beats = Heartbeats(
            registry, registration.agent_id, self._beat, self._beat_now, self.heartbeat_interval, self._backoff
        )
        loops: list[asyncio.Task[None]] = []
        try:
            if not await self._unless_stopped(registration.agent_id()):
                return
            log.info("agent %s (%s) serving %s with %d slots", self.name, self.id, self.capabilities, self._slots)
            loops = [self._background(beats.run(), "heartbeat"), self._background(work.run(), "work")]
            await self._stop_event.wait()
            log.info("agent %s stopping", self.name)
            await _cancel(loops[1])  # take no new work
            await pool.drain(self.grace_seconds, self._force)
        finally:
            for task in loops:
                await _cancel(task)
            await pool.abort()  # only left if serve() itself was cancelled or failed
            for channel in channels.values():
                await channel.close(grace=None)
            log.info("agent %s stopped", self.name)
        if self._fatal is not None:
            raise self._fatal

    def _targets(self) -> set[str]:
        return {self.registry_target, self.orchestrator_target}

    def _create_request(self) -> reg.CreateAgentRequest:
        return reg.CreateAgentRequest(
            name=self.name,
            type=self.type,
            version=self.version,
            capabilities=self.capabilities,
            config=_struct(self.config),
            metadata=_struct(self.metadata),
        )

    async def _unless_stopped(self, work: Awaitable[Any]) -> bool:
        """Await `work` unless stop() comes first (then cancel it and return False)."""
        task = asyncio.ensure_future(work)
        stopped = asyncio.create_task(self._stop_event.wait())
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
        await _cancel(stopped)
        if not task.done():
            await _cancel(task)
            return False
        task.result()
        return True

    def _background(self, loop: Awaitable[None], name: str) -> asyncio.Task[None]:
        """Run a reconnecting loop; if it dies (a refused registration, a bug) the agent stops and serve() raises."""

        async def guard() -> None:
            try:
                await loop
            except Exception as err:
                log.error("agent %s: the %s loop failed: %s", self.name, name, err, exc_info=True)
                self._fatal = err
                self.stop()

        return asyncio.create_task(guard(), name=f"ossa-{name}")

    # Load --------------------------------------------------------------------------------------------

    def _load_changed(self) -> None:
        busy = self.running >= self._slots
        if busy != self._was_busy:
            self._was_busy = busy
            self._beat_now.set()  # report busy/idle at once

    def _beat(self, agent_id: str) -> reg.HeartbeatRequest:
        running = self.running
        status = reg.AgentStatus.busy if running >= self._slots else reg.AgentStatus.idle
        return reg.HeartbeatRequest(agent_id=agent_id, status=status, load=min(1.0, running / self._slots))


def _channel(target: str, credentials: grpc.ChannelCredentials | None, interceptors: list[Any]) -> grpc.aio.Channel:
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS, interceptors=interceptors)
    return grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS, interceptors=interceptors)


async def _cancel(task: asyncio.Future[Any]) -> None:
    """Cancel a task and wait for it to end (its result or error is dropped)."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
