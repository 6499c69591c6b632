"""Capability routing: steps that say what they need in plain words go to the best-matching agent.

A step with `capability_query` (instead of an exact `capability`) creates an unrouted task. The
router asks the search service for the agents whose indexed description, capabilities and name
best match the query (semantic search, `SearchAgents`), and targets the task at the first of them
that is live (heartbeat present, not in error/offline) and scores at least the step's `min_score`
(default `OSSA_ROUTING_MIN_SCORE`). Only that agent may then lease it (leases.claim); the score
and the choice are kept on the task (`routing_score`, `routing_note`, shown by GetTask). Until an
agent qualifies, the task waits and says why in `routing_note`; when its lease is lost it is
routed again. Several orchestrators may route at once: the first to write wins.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from orchestrator_svc.dispatch import agent_wake_key, live_agents
from orchestrator_svc.outcome import Outcome

log = logging.getLogger("ossa.orchestrator")
BATCH = 50
CANDIDATES = 10


@dataclass(frozen=True)
class Candidate:
    agent_id: str
    name: str
    score: float


# (query, agent_type or None, limit) -> candidates, best first
Matcher = Callable[[str, str | None, int], Awaitable[Sequence[Candidate]]]


class MatcherUnavailable(Exception):
    """The search service could not be asked (the task stays unrouted and is tried again)."""


class Router:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        announce: Callable[[set[str]], None],
        matcher: Matcher,
        min_score: float,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.announce = announce  # Effects.announce: wake the chosen agent's stream, on any process
        self.matcher = matcher
        self.min_score = min_score
        self.kick: Callable[[], None] = lambda: None  # set to the routing job's kick (server.py)

    def observe(self, outcome: Outcome) -> None:
        """Effects observer: route new capability_query tasks now rather than at the next tick."""
        if any(r["capability_query"] for r in outcome.created):
            self.kick()

    async def route(self) -> int:
        """Route up to BATCH waiting tasks; returns how many got an agent."""
        rows = await self.pool.fetch(
            """SELECT id::text AS id, capability_query, routing_min_score, agent_type, routing_note FROM tasks
                WHERE status = 'pending' AND capability_query IS NOT NULL AND target_agent_id IS NULL
                ORDER BY enqueued_at LIMIT $1""",
            BATCH,
        )
        routed = 0
        answers: dict[tuple[str, str | None], Sequence[Candidate] | str] = {}
        for row in rows:
            key = (row["capability_query"], row["agent_type"])
            if key not in answers:
                try:
                    answers[key] = await self.matcher(key[0], key[1], CANDIDATES)
                except MatcherUnavailable as err:
                    answers[key] = f"waiting for the search service: {err}"
            answer = answers[key]
            minimum = row["routing_min_score"] if row["routing_min_score"] is not None else self.min_score
            if isinstance(answer, str):
                await self._note(row, answer)
                continue
            chosen = await self._choose(answer, minimum)
            if chosen is None:
                best = f" (best: {answer[0].name} at {answer[0].score:.2f})" if answer else ""
                await self._note(row, f"no live agent matches the query with a score of at least {minimum:g}{best}")
                continue
            if await self._target(row["id"], chosen, minimum):
                routed += 1
        return routed

    async def _choose(self, candidates: Sequence[Candidate], minimum: float) -> Candidate | None:
        for candidate in candidates:
            if candidate.score < minimum:
                return None  # best first: the rest score lower
            if await live_agents(self.redis, [candidate.agent_id]):
                return candidate
        return None

    async def _target(self, task_id: str, chosen: Candidate, minimum: float) -> bool:
        note = f"routed to {chosen.name} ({chosen.agent_id}): score {chosen.score:.3f} >= {minimum:g}"
        done = await self.pool.fetchval(
            """UPDATE tasks SET target_agent_id = $2, routing_score = $3, routing_note = $4,
                      routed_at = CURRENT_TIMESTAMP
                WHERE id = $1 AND status = 'pending' AND target_agent_id IS NULL RETURNING true""",
            task_id, chosen.agent_id, chosen.score, note,
        )  # fmt: skip
        if done:
            log.info("task routed", extra={"metadata": {"task_id": task_id, "agent_id": chosen.agent_id}})
            self.announce({agent_wake_key(chosen.agent_id)})
        return bool(done)

    async def _note(self, row: asyncpg.Record, note: str) -> None:
        if row["routing_note"] != note:
            await self.pool.execute(
                "UPDATE tasks SET routing_note = $2 WHERE id = $1 AND target_agent_id IS NULL", row["id"], note
            )
