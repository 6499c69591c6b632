"""An agent's lease stream: hand it tasks while it is alive and has free slots, push revocations.

Free slots are counted in PostgreSQL (leases the agent holds, on any stream or orchestrator), so
an agent never holds more tasks than it declared. Liveness is the registry's view in Redis: a
heartbeat key that has not expired and a status other than error/offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis

from orchestrator_svc import convert
from orchestrator_svc.engine import Revoked
from orchestrator_svc.events import EventHub, agent_wake_key
from orchestrator_svc.leases import LeaseStore
from orchestrator_svc.mirror import QueueMirror
from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_runtime import keys
from ossa_runtime.errors import InvalidArgument

log = logging.getLogger("ossa.orchestrator.work")
MAX_SLOTS = 1000


def check_slots(slots: int) -> int:
    if not 1 <= slots <= MAX_SLOTS:
        raise InvalidArgument("slots", f"must be between 1 and {MAX_SLOTS}, got {slots}")
    return slots


@dataclass
class Worker:
    agent_id: str
    agent_type: str
    capabilities: list[str]
    slots: int


async def is_live(redis: aioredis.Redis, agent_id: str) -> bool:
    beat, status = await redis.mget(keys.agent_heartbeat(agent_id), keys.agent_status(agent_id))
    return beat is not None and status not in ("error", "offline")


class WorkSession:
    """One Work stream: a dispatcher task fills an outbox the RPC drains."""

    def __init__(
        self, worker: Worker, leases: LeaseStore, mirror: QueueMirror, hub: EventHub, redis: aioredis.Redis,
        poll_seconds: float, quarantine: float,
    ) -> None:  # fmt: skip
        self.worker = worker
        self.leases = leases
        self.mirror = mirror
        self.hub = hub
        self.redis = redis
        self.poll_seconds = poll_seconds
        self.quarantine = quarantine
        self.outbox: asyncio.Queue[pb.WorkResponse | None] = asyncio.Queue()
        self.wake = hub.waker([*worker.capabilities, agent_wake_key(worker.agent_id)])
        self.closed = False
        self._unsubscribe = hub.on_revoke(worker.agent_id, self._revoked)

    def _revoked(self, revoked: Revoked) -> None:
        cancellation = pb.Cancellation(
            task_id=revoked.task_id, fencing_token=revoked.fencing_token, reason=revoked.reason
        )
        self.outbox.put_nowait(pb.WorkResponse(cancellation=cancellation))

    async def _dispatch_once(self) -> None:
        w = self.worker
        if not await is_live(self.redis, w.agent_id):
            return
        free = await self.leases.free_slots(w.agent_id, w.slots, self.quarantine)
        if free <= 0:
            return
        rows = await self.leases.claim(w.agent_id, w.capabilities, w.agent_type, free)
        if not rows:
            return
        await self.mirror.leased(rows)
        for row in rows:
            self.outbox.put_nowait(pb.WorkResponse(assignment=convert.assignment(row)))
        log.debug("assigned", extra={"metadata": {"agent_id": w.agent_id, "tasks": [r["id"] for r in rows]}})

    async def _dispatch(self) -> None:
        # Ends between rounds when the stream closes, never in the middle of a claim.
        while not self.closed:
            self.wake.clear()
            try:
                await self._dispatch_once()
            except Exception as err:  # a database hiccup must not end the agent's stream
                log.warning("dispatch failed; retrying", extra={"metadata": {"error": str(err)}})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self.wake.wait()

    async def _read(self, requests: AsyncIterator[pb.WorkRequest]) -> None:
        try:
            async for request in requests:
                if request.slots:
                    self.worker.slots = check_slots(request.slots)
                    self.wake.set()
        finally:
            self.outbox.put_nowait(None)  # the agent closed its side: end the stream

    async def run(self, requests: AsyncIterator[pb.WorkRequest]) -> AsyncIterator[pb.WorkResponse]:
        dispatcher = asyncio.create_task(self._dispatch(), name=f"dispatch-{self.worker.agent_id}")
        reader = asyncio.create_task(self._read(requests), name=f"read-{self.worker.agent_id}")
        try:
            while True:
                item = await self.outbox.get()
                if item is None:
                    if reader.done() and reader.exception() is not None:
                        raise reader.exception()  # type: ignore[misc]
                    return
                yield item
        finally:
            self.closed = True
            self.wake.set()
            reader.cancel()
            await asyncio.gather(dispatcher, reader, return_exceptions=True)
            self._unsubscribe()
            self.hub.drop_waker(self.wake)
