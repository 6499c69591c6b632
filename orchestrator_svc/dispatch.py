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

from orchestrator_svc.claims import Claims, Want
from orchestrator_svc.starts import Reservation
from ossa_runtime import keys, metrics

log = logging.getLogger("ossa.orchestrator.dispatch")
ALL: frozenset[str] = frozenset({"*"})
ONE_BY_ONE = 3  # up to this many agents wanting work: one single-statement claim each, concurrently


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
    held: set[str] = field(default_factory=set)  # task ids leased (or reserved) to it
    live: bool = False
    backlog: bool = True  # its last claim was cut at its limit (or none ran yet): no sync match then

    @property
    def free(self) -> int:
        return max(0, self.slots - len(self.held))

    def takes(self, task: dict[str, Any]) -> bool:
        """Whether a new task can go straight to this agent (sync match)."""
        return (
            self.live and bool(self.streams) and not self.backlog and self.free > 0
            and task["capability"] in self.capabilities
            and (task["agent_type"] is None or task["agent_type"] == self.agent_type)
        )  # fmt: skip

    def wanted_by(self, announced: frozenset[str]) -> bool:
        """Whether to claim for it now: everyone at a tick; an agent whose capabilities got queued work
        (which may wait in the queue for it from now on: backlog); one woken by name."""
        if announced is ALL:
            return True
        if self.capabilities & announced:
            self.backlog = True
            return True
        return agent_wake_key(self.agent_id) in announced

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
        self, claims: Claims, redis: aioredis.Redis, pool: asyncpg.Pool, on_leased: Callable[[list[Any]], None],
        poll_seconds: float, refresh_seconds: float = 1.0,
    ) -> None:  # fmt: skip
        self.claims = claims
        self.redis = redis
        self.pool = pool
        self.on_leased = on_leased
        self.poll_seconds = poll_seconds
        self.refresh_seconds = refresh_seconds
        self.agents: dict[str, LocalAgent] = {}
        # (workflow id, step) of each lease handed out here and not ended yet: whether its completion
        # can go without a transaction (a step nothing depends on; orchestrator_svc.completions).
        self.steps: dict[str, tuple[str, str]] = {}
        self._announced: set[str] = set()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._stop = asyncio.Event()

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
        self.steps.pop(task_id, None)
        agent = self.agents.get(agent_id)
        if agent is not None and task_id in agent.held:
            agent.held.discard(task_id)
            if agent.backlog:  # else nothing waits for it: new work reaches it by sync match
                self.wake({agent_wake_key(agent_id)})

    # Sync match ---------------------------------------------------------------------------------------

    def reserve(self, tasks: list[dict[str, Any]]) -> dict[str, Reservation]:
        """Set slots of idle local agents aside for new tasks (Temporal's sync match): the start's own
        statement leases them when PostgreSQL agrees (orchestrator_svc.starts); `settle` follows."""
        out: dict[str, Reservation] = {}
        ranks: dict[str, int] = {}
        for task in tasks:
            if task["capability_query"] or task.get("target_agent_id") or not task["capability"]:
                continue
            fits = [a for a in self.agents.values() if a.takes(task)]
            if not fits:
                continue
            agent = max(fits, key=lambda a: a.free)
            agent.held.add(task["id"])
            ranks[agent.agent_id] = ranks.get(agent.agent_id, 0) + 1
            out[task["id"]] = Reservation(agent.agent_id, agent.slots, ranks[agent.agent_id])
        return out

    def settle(self, reserved: dict[str, Reservation], leased: list[dict[str, Any]]) -> None:
        """Hand out what the start leased; free the reservations it did not use."""
        used = {row["id"] for row in leased}
        for task_id, reservation in reserved.items():
            if task_id not in used:
                self.released(reservation.agent_id, task_id)
                agent = self.agents.get(reservation.agent_id)
                if agent is not None:
                    agent.backlog = True  # something was queued before it: claim in queue order
        by_agent: dict[str, list[Any]] = {}
        for row in leased:
            by_agent.setdefault(row["agent_id"], []).append(row)
        self._hand_out(by_agent)

    # The loop --------------------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while not self._stopping:
            await self._wakeup.wait()
            self._wakeup.clear()
            announced, self._announced = frozenset(self._announced), set()
            if announced >= ALL:
                announced = ALL
            wants = [a for a in self.agents.values() if a.wanted_by(announced) and a.live and a.free > 0 and a.streams]
            if not wants:
                continue
            try:
                leased, more = await self._claim(wants)
            except Exception as err:  # the database is restarting, say: the tick tries again
                log.warning("claim failed; will retry", extra={"metadata": {"error": str(err)}})
                continue
            metrics.observe_batch("claim", sum(len(rows) for rows in leased.values()))
            self._hand_out(leased)
            for agent in more:  # the pick was cut at its limit: there may be more for it
                if agent.free > 0:
                    self.wake({*agent.capabilities, agent_wake_key(agent.agent_id)})

    async def _claim(self, wants: list[LocalAgent]) -> tuple[dict[str, list[Any]], list[LocalAgent]]:
        """One statement per agent (concurrently) for a few agents, one transaction for many."""
        if len(wants) > ONE_BY_ONE:
            leased, more = await self.claims.claim([a.want() for a in wants])
            for agent in wants:
                agent.backlog = more
            return leased, wants if more else []
        results = await asyncio.gather(*(self.claims.claim_one(a.want()) for a in wants), return_exceptions=True)
        out: dict[str, list[Any]] = {}
        again = []
        for agent, result in zip(wants, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            rows, cut = result
            if rows:
                out[agent.agent_id] = rows
            agent.backlog = cut
            if cut:
                again.append(agent)
        return out, again

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
            self.steps.update((r["id"], (r["workflow_id"], r["name"])) for r in agent_rows)
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
            gone = before[agent.agent_id] - now
            agent.held -= gone
            for task_id in gone:
                self.steps.pop(task_id, None)
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
