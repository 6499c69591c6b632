"""Heartbeat bookkeeping in the background: batched PostgreSQL writes and the offline sweep.

Beats land in Redis at once (registry_svc.presence) and in PostgreSQL every `flush_seconds`, one
UPDATE for all agents that beat since the last flush (not one write per beat). The sweep marks
agents offline once they have been silent for `offline_after` seconds; every registry process may
run it, the UPDATE is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from ossa_runtime.periodic import Periodic
from registry_svc.presence import Presence
from registry_svc.store import AgentStore

log = logging.getLogger("ossa.registry.heartbeats")


class HeartbeatWriter:
    """Buffers the latest beat per agent and writes them to PostgreSQL in batches."""

    def __init__(self, store: AgentStore, flush_seconds: float) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self._pending: dict[str, tuple[str, datetime]] = {}
        self._lock = asyncio.Lock()
        self._job = Periodic("heartbeat-writer", flush_seconds, self.flush)

    def add(self, agent_id: str, status: str, at: datetime) -> None:
        current = self._pending.get(agent_id)
        if current is None or current[1] <= at:
            self._pending[agent_id] = (status, at)

    def discard(self, agent_id: str) -> None:
        self._pending.pop(agent_id, None)

    async def flush(self) -> int:
        async with self._lock:
            batch, self._pending = self._pending, {}
            if not batch:
                return 0
            try:
                return await self.store.record_beats([(a, s, t) for a, (s, t) in batch.items()])
            except Exception:
                # Keep the beats for the next attempt; newer beats that arrived meanwhile win.
                for agent_id, (status, at) in batch.items():
                    self.add(agent_id, status, at)
                raise

    def start(self) -> None:
        self._job.start()

    async def stop(self) -> None:
        """Stop the loop and write what is buffered (idempotent)."""
        await self._job.stop()
        try:
            await self.flush()
        except Exception:
            log.exception("final heartbeat flush failed")


class OfflineSweeper:
    """Marks silent agents offline in PostgreSQL and Redis."""

    def __init__(self, store: AgentStore, presence: Presence, offline_after: float, every: float) -> None:
        self.store = store
        self.presence = presence
        self.offline_after = offline_after
        self.job = Periodic("offline-sweeper", every, self.sweep)

    async def sweep(self) -> list[str]:
        ids = await self.store.mark_offline(self.offline_after)
        if ids:
            await self.presence.mark_offline(ids)
            log.info("agents went offline", extra={"metadata": {"agent_ids": ids}})
        return ids
