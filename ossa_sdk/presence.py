"""The agent's side of the registry: registering (or finding itself after a restart) and heartbeats."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import grpc

from ossa.registry.v1 import registry_pb2 as reg
from ossa_sdk.backoff import Backoff
from ossa_sdk.errors import RegistrationError
from ossa_sdk.work import EOF, AgentIdSource

log = logging.getLogger("ossa.sdk")

RPC_TIMEOUT_SECONDS = 10.0
DEFAULT_HEARTBEAT_SECONDS = 10.0
# Codes that mean the registry will never accept this agent as configured.
FATAL = frozenset(
    {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}
)


class Registration:
    """Registers the agent once (CreateAgent, or its existing id by name) and again if the platform forgets it."""

    def __init__(self, stub: Any, request: reg.CreateAgentRequest, backoff: Callable[[], Backoff] = Backoff) -> None:
        self._stub = stub
        self._request = request
        self._new_backoff = backoff
        self._lock = asyncio.Lock()
        self.id: str | None = None
        self.on_new_id: Callable[[str], None] = lambda agent_id: None  # after registering again

    async def agent_id(self, stale: str | None = None) -> str:
        """The agent's id, registering first if there is none yet or the platform no longer knows `stale`."""
        async with self._lock:
            if self.id is None or self.id == stale:
                if stale is not None:
                    log.warning("agent %s (%s) is no longer registered; registering again", self._request.name, stale)
                self.id = await self._register()
                if stale is not None and self.id != stale:
                    self.on_new_id(self.id)
            return self.id

    async def _register(self) -> str:
        name = self._request.name
        backoff = self._new_backoff()
        while True:
            try:
                agent = (await self._stub.CreateAgent(self._request, timeout=RPC_TIMEOUT_SECONDS)).agent
                log.info("registered agent %s as %s", name, agent.id)
                return str(agent.id)
            except grpc.aio.AioRpcError as err:
                if err.code() in FATAL:
                    raise RegistrationError(f"the registry refused agent {name!r}: {err.details()}") from None
                failure = err
            if failure.code() == grpc.StatusCode.ALREADY_EXISTS:
                try:
                    found = await self._find()
                except grpc.aio.AioRpcError as err:
                    failure = err
                else:
                    if found is not None:
                        return found
                    continue  # deleted in between: create it again
            delay = backoff.next()
            log.warning(
                "cannot register agent %s (%s: %s); retrying in %.1fs",
                name,
                failure.code().name,
                failure.details(),
                delay,
            )
            await asyncio.sleep(delay)

    async def _find(self) -> str | None:
        request = reg.ListAgentsRequest(name=self._request.name, limit=1)
        reply = await self._stub.ListAgents(request, timeout=RPC_TIMEOUT_SECONDS)
        for agent in reply.agents:
            if agent.name == self._request.name:
                log.info("agent %s is already registered as %s; reusing that id", agent.name, agent.id)
                if sorted(agent.capabilities) != sorted(self._request.capabilities):
                    log.warning("agent %s is registered with capabilities %s", agent.name, list(agent.capabilities))
                return str(agent.id)
        return None


class Heartbeats:
    """Beats on AgentRegistryService.Heartbeat every interval (the registry's, unless overridden) and on `wake`."""

    def __init__(
        self,
        stub: Any,
        agent_id: AgentIdSource,
        beat: Callable[[str], reg.HeartbeatRequest],
        wake: asyncio.Event,
        interval: float | None = None,
        backoff: Callable[[], Backoff] = Backoff,
    ) -> None:
        self._stub = stub
        self._agent_id = agent_id
        self._beat = beat
        self._wake = wake
        self._interval = interval
        self._new_backoff = backoff
        self.acks = 0

    async def run(self) -> None:
        """Hold the heartbeat stream until cancelled, reconnecting with backoff."""
        backoff = self._new_backoff()
        stale: str | None = None
        while True:
            agent_id = await self._agent_id(stale)
            stale = None
            interval = self._interval or DEFAULT_HEARTBEAT_SECONDS
            call = self._stub.Heartbeat()
            try:
                while True:
                    self._wake.clear()
                    await call.write(self._beat(agent_id))
                    async with asyncio.timeout(2 * interval + RPC_TIMEOUT_SECONDS):
                        ack = await call.read()
                    if ack is EOF:
                        log.warning("the registry closed the heartbeat stream")
                        break
                    self.acks += 1
                    backoff.reset()
                    if self._interval is None and ack.interval_seconds > 0:
                        interval = float(ack.interval_seconds)
                    with suppress(TimeoutError):
                        async with asyncio.timeout(interval):
                            await self._wake.wait()
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.NOT_FOUND:
                    stale = agent_id  # deleted: register again
                log.warning("heartbeat stream failed (%s: %s)", err.code().name, err.details())
            except TimeoutError:
                log.warning("the registry did not acknowledge a heartbeat in time")
            except Exception:
                log.exception("heartbeat stream failed")
            finally:
                call.cancel()
            await asyncio.sleep(backoff.next())
