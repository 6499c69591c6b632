"""Scenario 6's crowd: many lightweight agents heartbeating from one process, through Envoy.

Each of `count` registered agents (no capabilities: they take no work) holds its own
AgentRegistryService/Heartbeat stream and beats every `interval` seconds; a stream that fails is
opened again after `RECONNECT` seconds, as the SDK does (bounded by stop()). `beating_since(t)`
tells how many got an acknowledgement after `t`: after the registry was killed and restarted,
every one of them must be beating again.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import Counter
from typing import Any

import grpc

from ossa.registry.v1 import registry_pb2 as reg
from ossa.registry.v1 import registry_pb2_grpc

CALL = 10.0
RECONNECT = 0.5
EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]


class HeartbeatFleet:
    def __init__(self, gateway: str, token: str, count: int, interval: float = 2.0) -> None:
        self.gateway, self.token, self.count, self.interval = gateway, token, count, interval
        self.ids: list[str] = []
        self.last_ack: dict[str, float] = {}  # agent id -> wall time of its last acknowledged beat
        self.errors: Counter[str] = Counter()
        self.streams = 0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> Any:
        # No client interceptors: with them grpc.aio backs a stream's write() by a task of its own,
        # which a cancelled call leaves behind. The token goes as call metadata instead.
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.gateway)
        return registry_pb2_grpc.AgentRegistryServiceStub(self._channel)

    @property
    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    async def register(self) -> None:
        stub = self._stub()
        tag = secrets.token_hex(3)

        async def one(i: int) -> str:
            request = reg.CreateAgentRequest(name=f"faults-hb-{tag}-{i}", type="worker", version="1.0.0")
            return str((await stub.CreateAgent(request, timeout=CALL, metadata=self._metadata)).agent.id)

        for first in range(0, self.count, 50):
            self.ids += await asyncio.gather(*(one(i) for i in range(first, min(self.count, first + 50))))

    def start(self) -> None:
        stub = self._stub()
        self._tasks = [asyncio.create_task(self._beat(stub, agent_id)) for agent_id in self.ids]

    async def _beat(self, stub: Any, agent_id: str) -> None:
        while not self._stop.is_set():
            call = stub.Heartbeat(metadata=self._metadata)
            self.streams += 1
            try:
                while not self._stop.is_set():
                    await call.write(reg.HeartbeatRequest(agent_id=agent_id, status=reg.AgentStatus.idle))
                    ack = await asyncio.wait_for(call.read(), CALL)
                    if ack is EOF:
                        self.errors["stream closed by the server"] += 1
                        break
                    self.last_ack[agent_id] = time.time()
                    await self._pause(self.interval)
            except grpc.aio.AioRpcError as err:
                self.errors[f"{err.code().name}: {(err.details() or '')[:60]}"] += 1
            except Exception as err:  # a write after the server ended the call: InvalidStateError
                self.errors[type(err).__name__] += 1
            finally:
                call.cancel()
            await self._pause(RECONNECT)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def beating_since(self, epoch: float) -> int:
        return sum(1 for agent_id in self.ids if self.last_ack.get(agent_id, 0.0) > epoch)

    async def wait_beating_since(self, epoch: float, timeout: float) -> float | None:
        """Seconds from `epoch` until every agent had a beat acknowledged after it (None: not within timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.beating_since(epoch) == len(self.ids):
                return max(self.last_ack[a] for a in self.ids) - epoch
            await asyncio.sleep(0.2)
        return None

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def delete(self) -> None:
        """Unregister the crowd (best effort), then close the channel."""
        stub = self._stub()
        for first in range(0, len(self.ids), 50):
            chunk = self.ids[first : first + 50]
            deletes = (
                stub.DeleteAgent(reg.DeleteAgentRequest(agent_id=a), timeout=CALL, metadata=self._metadata)
                for a in chunk
            )
            await asyncio.gather(*deletes, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None
