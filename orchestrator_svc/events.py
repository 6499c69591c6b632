"""Wake-ups and lease revocations between orchestrator processes (Redis pub/sub).

`ready` (a task was queued or a slot was freed) wakes every lease stream so work is handed out at
once instead of at the next poll; `revoke` reaches the process whose stream serves the agent that
holds a cancelled lease. Messages are hints: streams also poll, and a lost revoke only means the
agent learns at its next renew or complete that its lease is gone.
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

from orchestrator_svc.engine import Revoked

log = logging.getLogger("ossa.orchestrator.events")
CHANNEL = "ossa:orchestrator:events"


def agent_wake_key(agent_id: str) -> str:
    """The pseudo-capability that wakes one agent's streams (work routed to it by orchestrator_svc.router)."""
    return f"@agent:{agent_id}"


class EventHub:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._origin = secrets.token_hex(8)  # our own messages come back from Redis: ignore them
        self._wakers: dict[asyncio.Event, frozenset[str]] = {}
        self._revokers: dict[str, set[Callable[[Revoked], None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # Local side ------------------------------------------------------------------------------

    def waker(self, capabilities: Iterable[str]) -> asyncio.Event:
        """An event set when work for any of `capabilities` may be claimable."""
        event = asyncio.Event()
        self._wakers[event] = frozenset(capabilities)
        return event

    def drop_waker(self, event: asyncio.Event) -> None:
        self._wakers.pop(event, None)

    def on_revoke(self, agent_id: str, callback: Callable[[Revoked], None]) -> Callable[[], None]:
        self._revokers.setdefault(agent_id, set()).add(callback)
        return lambda: self._revokers.get(agent_id, set()).discard(callback)

    def _wake_local(self, capabilities: frozenset[str] | None = None) -> None:
        """Wake the streams serving any of `capabilities` (None: all of them)."""
        for event, served in self._wakers.items():
            if capabilities is None or served & capabilities:
                event.set()

    def _revoke_local(self, revoked: Revoked) -> None:
        for callback in list(self._revokers.get(revoked.agent_id, ())):
            callback(revoked)

    # Across processes ------------------------------------------------------------------------

    async def _publish(self, message: dict[str, Any]) -> None:
        try:
            await self.redis.publish(CHANNEL, json.dumps({**message, "origin": self._origin}))
        except Exception as err:  # a hint only: streams poll
            log.warning("could not publish an event", extra={"metadata": {"error": str(err)}})

    async def ready(self, capabilities: Iterable[str]) -> None:
        """Tasks with these capabilities were queued, or agents serving them freed slots."""
        wanted = frozenset(capabilities)
        if not wanted:
            return
        self._wake_local(wanted)
        await self._publish({"kind": "ready", "capabilities": sorted(wanted)})

    async def revoke(self, revoked: Iterable[Revoked]) -> None:
        for r in revoked:
            self._revoke_local(r)
            await self._publish(
                {"kind": "revoke", "task_id": r.task_id, "agent_id": r.agent_id, "token": r.fencing_token,
                 "reason": r.reason}
            )  # fmt: skip

    def _handle(self, raw: str) -> None:
        message = json.loads(raw)
        if message.get("origin") == self._origin:
            return
        if message.get("kind") == "ready":
            self._wake_local(frozenset(message.get("capabilities") or ()))
        elif message.get("kind") == "revoke":
            self._revoke_local(Revoked(message["task_id"], message["agent_id"], message["token"], message["reason"]))

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
                self._wake_local()
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
