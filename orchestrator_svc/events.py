"""Announcements between orchestrator processes (Redis pub/sub): work to claim, slots freed, leases revoked.

After a commit, the process that made it tells the others, in one message per batch: which
capabilities got new tasks, which agents' leases ended (their slots are free: task ids included,
so the process holding the agent's stream counts exactly), and which leases were revoked (the
process holding that agent's stream pushes the cancellation). Messages are hints: the dispatcher
also ticks, and a lost revoke only means the agent learns at its next renew or complete that its
lease is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis

from orchestrator_svc.dispatch import Dispatcher
from orchestrator_svc.outcome import Revoked

log = logging.getLogger("ossa.orchestrator.events")
CHANNEL = "ossa:orchestrator:events"


class EventHub:
    def __init__(self, redis: aioredis.Redis, dispatcher: Dispatcher) -> None:
        self.redis = redis
        self.dispatcher = dispatcher
        self._origin = secrets.token_hex(8)  # our own messages come back from Redis: ignore them
        self._revokers: dict[str, set[Callable[[Revoked], None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # Local side ------------------------------------------------------------------------------

    def on_revoke(self, agent_id: str, callback: Callable[[Revoked], None]) -> Callable[[], None]:
        self._revokers.setdefault(agent_id, set()).add(callback)
        return lambda: self._revokers.get(agent_id, set()).discard(callback)

    def revoke_local(self, revoked: Iterable[Revoked]) -> None:
        for r in revoked:
            for callback in list(self._revokers.get(r.agent_id, ())):
                callback(r)

    # Across processes ------------------------------------------------------------------------

    async def publish(self, ready: Iterable[str], freed: Iterable[tuple[str, str]], revoked: Iterable[Revoked]) -> None:
        """One message for a batch of commits: capabilities with new work, (agent, task) leases that
        ended, revocations."""
        message: dict[str, Any] = {
            "origin": self._origin,
            "ready": sorted(set(ready)),
            "freed": sorted(set(freed)),
            "revoked": [[r.task_id, r.agent_id, r.fencing_token, r.reason] for r in revoked],
        }
        if not (message["ready"] or message["freed"] or message["revoked"]):
            return
        try:
            await self.redis.publish(CHANNEL, json.dumps(message))
        except Exception as err:  # a hint only: the dispatcher ticks
            log.warning("could not publish an event", extra={"metadata": {"error": str(err)}})

    def _handle(self, raw: str) -> None:
        message = json.loads(raw)
        if message.get("origin") == self._origin:
            return
        for agent_id, task_id in message.get("freed") or ():
            self.dispatcher.released(agent_id, task_id)
        if message.get("ready"):
            self.dispatcher.wake(message["ready"])
        self.revoke_local(Revoked(*r) for r in message.get("revoked") or ())

    async def _listen(self) -> None:
        # Polls with a timeout instead of being cancelled mid-read: a Redis read cancelled halfway
        # leaves its connection half-open.
        while not self._stopping.is_set():
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    while not self._stopping.is_set():
                        message = await pubsub.get_message(timeout=0.2)
                        if message and message.get("type") == "message":
                            self._handle(message["data"])
            except Exception as err:
                log.warning("event subscription lost; resubscribing", extra={"metadata": {"error": str(err)}})
                self.dispatcher.wake(None)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._stopping.wait()

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._listen(), name="orchestrator-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._stopping.set()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
