"""In-memory dispatch: this process knows its agents' streams and free slots and hands them work.

One loop per process claims for every local agent that has a free slot and could use what was
announced (new tasks of its capabilities, a slot of its own that freed, work routed to it): one
transaction for all of them (leases.LeaseStore.claim), then each agent's stream gets its leases.
Nothing is polled per stream: wake-ups come from this process's commits and, through Redis
pub/sub, from the other orchestrator processes; a slow tick (`poll_seconds`) repairs missed
wake-ups and picks up tasks whose retry backoff ended.

Free slots are counted here (leases handed out minus leases ended) and checked again in
PostgreSQL by the claim itself, so an agent never holds more than its slots even with streams on
several processes. Liveness (the registry's heartbeat key and status in Redis) and the leases each
agent holds are refreshed for all local agents at once every `refresh_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
import redis.asyncio as aioredis

from orchestrator_svc.leases import LeaseStore, Want
from ossa_runtime import keys, metrics

log = logging.getLogger("ossa.orchestrator.dispatch")
ALL: frozenset[str] = frozenset({"*"})


def agent_wake_key(agent_id: str) -> str:
    """The pseudo-capability that wakes one agent (work routed to it, a slot of its own freed)."""
    return f"@agent:{agent_id}"


class Stream(Protocol):
    """A Work stream as the dispatcher sees it."""

    def deliver(self, rows: list[Any]) -> None: ...


@dataclass
class LocalAgent:
    agent_id: str
    agent_type: str
    capabilities: frozenset[str]
    slots: int
    streams: list[Stream] = field(default_factory=list)
    held: set[str] = field(default_factory=set)  # task ids leased to it
    live: bool = False

    @property
    def free(self) -> int:
        return max(0, self.slots - len(self.held))

    def wanted_by(self, announced: frozenset[str]) -> bool:
        return announced is ALL or bool(self.capabilities & announced) or agent_wake_key(self.agent_id) in announced

    def want(self) -> Want:
        return Want(self.agent_id, self.capabilities, self.agent_type, self.slots, self.free)


async def live_agents(redis: aioredis.Redis, agent_ids: list[str]) -> set[str]:
    """Those with a heartbeat key and a status other than error/offline (one round trip for all)."""
    if not agent_ids:
        return set()
    values = await redis.mget([k for a in agent_ids for k in (keys.agent_heartbeat(a), keys.agent_status(a))])
    return {
        a for i, a in enumerate(agent_ids)
        if values[2 * i] is not None and values[2 * i + 1] not in ("error", "offline")
    }  # fmt: skip


class Dispatcher:
    def __init__(
        self, leases: LeaseStore, redis: aioredis.Redis, pool: asyncpg.Pool, on_leased: Callable[[list[Any]], None],
        poll_seconds: float, refresh_seconds: float = 1.0,
    ) -> None:  # fmt: skip
        self.leases = leases
        self.redis = redis
        self.pool = pool
        self.on_leased = on_leased
        self.poll_seconds = poll_seconds
        self.refresh_seconds = refresh_seconds
        self.agents: dict[str, LocalAgent] = {}
        self._announced: set[str] = set()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._stop = asyncio.Event()
        self.claims = 0  # claim transactions so far

    # Streams --------------------------------------------------------------------------------------

    async def attach(self, agent_id: str, agent_type: str, capabilities: Iterable[str], slots: int,
                     stream: Stream) -> LocalAgent:  # fmt: skip
        agent = self.agents.get(agent_id)
        if agent is None:
            agent = self.agents[agent_id] = LocalAgent(agent_id, agent_type, frozenset(capabilities), slots)
            agent.held = await self._held_one(agent_id)
        agent.capabilities, agent.slots, agent.agent_type = frozenset(capabilities), slots, agent_type
        agent.streams.append(stream)
        agent.live = agent_id in await live_agents(self.redis, [agent_id])
        self.wake({agent_wake_key(agent_id)})
        return agent

    def detach(self, agent: LocalAgent, stream: Stream) -> None:
        with contextlib.suppress(ValueError):
            agent.streams.remove(stream)
        if not agent.streams and self.agents.get(agent.agent_id) is agent:
            del self.agents[agent.agent_id]

    def resize(self, agent: LocalAgent, slots: int) -> None:
        agent.slots = slots
        self.wake({agent_wake_key(agent.agent_id)})

    # Announcements ----------------------------------------------------------------------------------

    def wake(self, announced: Iterable[str] | None = None) -> None:
        """Work may be claimable for these capabilities / agent wake keys (None: for everyone)."""
        if announced is None:
            self._announced |= ALL
        else:
            self._announced.update(announced)
        if self._announced:
            self._wakeup.set()

    def released(self, agent_id: str, task_id: str) -> None:
        """A lease of this agent ended (completed, failed, expired, revoked): its slot is free."""
        agent = self.agents.get(agent_id)
        if agent is not None and task_id in agent.held:
            agent.held.discard(task_id)
            self.wake({agent_wake_key(agent_id)})

    # The loop --------------------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while not self._stopping:
            await self._wakeup.wait()
            self._wakeup.clear()
            announced, self._announced = frozenset(self._announced), set()
            if announced >= ALL:
                announced = ALL
            wants = [a for a in self.agents.values() if a.live and a.free > 0 and a.streams and a.wanted_by(announced)]
            if not wants:
                continue
            try:
                leased, more = await self.leases.claim([a.want() for a in wants])
            except Exception as err:  # the database is restarting, say: the tick tries again
                log.warning("claim failed; will retry", extra={"metadata": {"error": str(err)}})
                continue
            self.claims += 1
            metrics.observe_batch("claim", sum(len(rows) for rows in leased.values()))
            self._hand_out(leased)
            if more:  # the pick was cut at its limit: there may be more for those still free
                for agent in wants:
                    if agent.free > 0:
                        self.wake({*agent.capabilities, agent_wake_key(agent.agent_id)})

    def _hand_out(self, leased: dict[str, list[Any]]) -> None:
        handed: list[Any] = []
        for agent_id, rows in leased.items():
            agent = self.agents.get(agent_id)
            agent_rows = list(rows)
            handed += agent_rows
            if agent is None or not agent.streams:
                # The stream closed during the claim: the leases expire and the tasks are retried.
                log.warning("agent left during a claim", extra={"metadata": {"agent_id": agent_id}})
                continue
            agent.held.update(r["id"] for r in agent_rows)
            agent.streams[-1].deliver(agent_rows)
        if handed:
            self.on_leased(handed)

    async def _tick(self) -> None:
        """The fallback poll, and the refresh of liveness and held leases for every local agent."""
        since_refresh = 0.0
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._stop.wait()
            if self._stopping:
                return
            since_refresh += self.poll_seconds
            if since_refresh >= self.refresh_seconds:
                since_refresh = 0.0
                try:
                    await self.refresh()
                except Exception as err:
                    log.warning("agent refresh failed", extra={"metadata": {"error": str(err)}})
            if any(a.live and a.free > 0 for a in self.agents.values()):
                self.wake(None)

    async def refresh(self) -> None:
        """Liveness from Redis, held leases from PostgreSQL, for all local agents at once."""
        agents = list(self.agents.values())
        if not agents:
            return
        ids = [a.agent_id for a in agents]
        live = await live_agents(self.redis, ids)
        before = {a.agent_id: set(a.held) for a in agents}
        rows = await self.pool.fetch(
            """SELECT agent_id::text AS agent_id, id::text AS id FROM tasks
                WHERE agent_id = ANY($1::uuid[]) AND status IN ('assigned', 'running')""",
            ids,
        )
        held: dict[str, set[str]] = {}
        for r in rows:
            held.setdefault(r["agent_id"], set()).add(r["id"])
        for agent in agents:
            now = held.get(agent.agent_id, set())
            # Leases that ended elsewhere free their slots; leases handed out during the query stay.
            agent.held -= before[agent.agent_id] - now
            agent.held |= now
            became_live = agent.agent_id in live and not agent.live
            agent.live = agent.agent_id in live
            if became_live:
                self.wake({agent_wake_key(agent.agent_id)})

    async def _held_one(self, agent_id: str) -> set[str]:
        rows = await self.pool.fetch(
            "SELECT id::text AS id FROM tasks WHERE agent_id = $1 AND status IN ('assigned', 'running')", agent_id
        )
        return {r["id"] for r in rows}

    def start(self) -> None:
        if not self._tasks:
            self._stopping = False
            self._stop.clear()
            self._tasks = [
                asyncio.create_task(self._dispatch(), name="dispatch"),
                asyncio.create_task(self._tick(), name="dispatch-tick"),
            ]

    async def stop(self) -> None:
        """End the loops between claims (a claim in flight commits and is handed out first)."""
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        self._stopping = True
        self._stop.set()
        self._wakeup.set()
        await asyncio.gather(*tasks, return_exceptions=True)
