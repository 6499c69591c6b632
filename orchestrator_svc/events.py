"""Announcements between orchestrator processes (Redis pub/sub): work to claim, slots freed, leases revoked.

After a commit, the process that made it tells the others, in one message per batch: which
capabilities got new tasks, which agents' leases ended (their slots are free: task ids included,
so the process holding the agent's stream counts exactly), and which leases were revoked (the
process holding that agent's stream pushes the cancellation). Messages are hints: the dispatcher
also ticks, and a lost revoke only means the agent learns at its next renew or complete that its
lease is gone.

Watchers (orchestrator_svc/watch.py) hear about changes to the executions they watch: a process
with a watcher announces the execution id ("watch", repeated while it watches), and the others
then add the ids of watched executions a batch changed ("changed") to their next message. Nobody
watching: nothing more is computed or sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis

from orchestrator_svc.dispatch import Dispatcher
from orchestrator_svc.outcome import Revoked

log = logging.getLogger("ossa.orchestrator.events")
CHANNEL = "ossa:orchestrator:events"
WATCH_TTL_SECONDS = 15.0  # a watch announcement lasts this long; watchers repeat it more often


class EventHub:
    def __init__(self, redis: aioredis.Redis, dispatcher: Dispatcher) -> None:
        self.redis = redis
        self.dispatcher = dispatcher
        self._origin = secrets.token_hex(8)  # our own messages come back from Redis: ignore them
        self._own = json.dumps({"origin": self._origin})[:-1]  # how each of them starts (origin comes first)
        self._revokers: dict[str, set[Callable[[Revoked], None]]] = {}
        self._watchers: dict[str, set[Callable[[], None]]] = {}  # execution id -> local watchers
        self._watched: dict[str, float] = {}  # execution id -> until when another process watches it
        self._watched_until = 0.0  # the latest of those
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

    def on_change(self, execution_id: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` when a committed change touches the execution (here or elsewhere)."""
        self._watchers.setdefault(execution_id, set()).add(callback)

        def remove() -> None:
            callbacks = self._watchers.get(execution_id)
            if callbacks is not None:
                callbacks.discard(callback)
                if not callbacks:
                    del self._watchers[execution_id]

        return remove

    @property
    def watching(self) -> bool:
        """Whether any execution is watched in this process."""
        return bool(self._watchers)

    def changed_local(self, execution_ids: Iterable[str]) -> None:
        for execution_id in execution_ids:
            for callback in list(self._watchers.get(execution_id, ())):
                callback()

    def watched_elsewhere(self, execution_ids: Iterable[str]) -> set[str]:
        """Those of the executions another process announced it watches."""
        if not self._watched:
            return set()
        now = time.monotonic()
        if now > self._watched_until:  # every announcement expired: back to computing nothing
            self._watched.clear()
            return set()
        return {e for e in execution_ids if self._watched.get(e, 0.0) > now}

    async def announce_watch(self, execution_id: str) -> None:
        """Tell the other processes to report changes to this execution (for WATCH_TTL_SECONDS)."""
        try:
            await self.redis.publish(CHANNEL, json.dumps({"origin": self._origin, "watch": [execution_id]}))
        except Exception as err:  # watchers also re-read periodically
            log.warning("could not announce a watch", extra={"metadata": {"error": str(err)}})

    # Across processes ------------------------------------------------------------------------

    def message(self, ready: Iterable[str], freed: Iterable[tuple[str, str]], revoked: Iterable[Revoked],
                changed: Iterable[str] = ()) -> str | None:  # fmt: skip
        """One message for a batch of commits: capabilities with new work, (agent, task) leases that
        ended, revocations, and watched executions that changed; None when there is nothing to say."""
        message: dict[str, Any] = {
            "origin": self._origin,
            "ready": sorted(set(ready)),
            "freed": sorted(set(freed)),
            "revoked": [[r.task_id, r.agent_id, r.fencing_token, r.reason] for r in revoked],
        }
        changed = sorted(set(changed))
        if changed:
            message["changed"] = changed
        if not (message["ready"] or message["freed"] or message["revoked"] or changed):
            return None
        return json.dumps(message)

    async def send(self, text: str) -> None:
        """Publish a `message(...)` on its own (the after-commit writer sends it with the mirror's writes)."""
        try:
            await self.redis.publish(CHANNEL, text)
        except Exception as err:  # a hint only: the dispatcher ticks
            log.warning("could not publish an event", extra={"metadata": {"error": str(err)}})

    def _handle(self, raw: str) -> None:
        if raw.startswith(self._own):  # our own message, back from Redis: not even parsed
            return
        message = json.loads(raw)
        if message.get("origin") == self._origin:
            return
        for agent_id, task_id in message.get("freed") or ():
            self.dispatcher.released(agent_id, task_id)
        if message.get("ready"):
            self.dispatcher.wake(message["ready"])
        self.revoke_local(Revoked(*r) for r in message.get("revoked") or ())
        if message.get("changed"):
            self.changed_local(message["changed"])
        if message.get("watch"):
            now = time.monotonic()
            if len(self._watched) > 1000:
                self._watched = {e: until for e, until in self._watched.items() if until > now}
            for execution_id in message["watch"]:
                self._watched[execution_id] = self._watched_until = now + WATCH_TTL_SECONDS

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
