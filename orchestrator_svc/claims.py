"""Claims: leasing ready tasks to the agents whose streams this process holds.

Two shapes, both `FOR UPDATE SKIP LOCKED` (several orchestrator processes never lease one task
twice), both checking in PostgreSQL the agent's free slots (leases it holds on any stream or
process) and its quarantine (a lease it let expire recently):
- `claim_one`: one agent, one statement (its own transaction): the common case of a slot freed or
  a task queued for an idle agent.
- `claim`: many agents in one transaction: pick the queue's head for all of them, match in
  Python (capabilities, type, target, most free slots first), assign with one UPDATE.
Highest priority first, FIFO within a priority.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from orchestrator_svc.leases import TASK_COLUMNS, Row


@dataclass(frozen=True)
class Want:
    """An agent with free slots on one of this process's streams, as the dispatcher sees it."""

    agent_id: str
    capabilities: frozenset[str]
    agent_type: str
    slots: int  # declared
    free: int  # slots minus the leases this process knows it holds


_HELD_AND_PICKED = """
WITH held AS (
    SELECT agent_id::text AS id, count(*)::int AS n FROM tasks
     WHERE agent_id = ANY($1::uuid[]) AND status IN ('assigned', 'running') GROUP BY agent_id
), quarantined AS (
    SELECT DISTINCT agent_id::text AS id FROM task_attempts
     WHERE agent_id = ANY($1::uuid[]) AND outcome = 'expired'
       AND finished_at > CURRENT_TIMESTAMP - make_interval(secs => $4)
), picked AS (
    -- The head of each queue (each capability, each agent's routed tasks), one ordered index walk
    -- each (migration 0013), then the first $3 of them all in queue order.
    SELECT * FROM (
        SELECT c.* FROM unnest($2::text[]) AS cap(name) CROSS JOIN LATERAL (
            SELECT id::text AS id, priority, enqueued_at, capability, agent_type, NULL::text AS target FROM tasks
             WHERE status = 'pending' AND target_agent_id IS NULL AND capability = cap.name
               AND available_at <= CURRENT_TIMESTAMP
             ORDER BY priority DESC, enqueued_at, tasks.id LIMIT $3 FOR UPDATE SKIP LOCKED
        ) c
        UNION ALL
        SELECT r.* FROM unnest($1::uuid[]) AS a(agent) CROSS JOIN LATERAL (
            SELECT id::text AS id, priority, enqueued_at, capability, agent_type, target_agent_id::text AS target
              FROM tasks
             WHERE status = 'pending' AND target_agent_id = a.agent AND available_at <= CURRENT_TIMESTAMP
             ORDER BY priority DESC, enqueued_at, tasks.id LIMIT $3 FOR UPDATE SKIP LOCKED
        ) r
    ) heads ORDER BY priority DESC, enqueued_at, id LIMIT $3
)
SELECT 'h' AS kind, id, n, NULL::timestamptz AS enqueued_at, NULL::text AS capability, NULL::text AS agent_type,
       NULL::text AS target FROM held
UNION ALL
SELECT 'q', id, 0, NULL, NULL, NULL, NULL FROM quarantined
UNION ALL
SELECT 'p', id, priority, enqueued_at, capability, agent_type, target FROM picked
"""

_ASSIGN = f"""
WITH m AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS m(id, agent)
), up AS (
    UPDATE tasks t
       SET status = 'assigned', agent_id = m.agent, attempt = t.attempt + 1, fencing_token = t.fencing_token + 1,
           started_at = CURRENT_TIMESTAMP,
           lease_expires_at = CURRENT_TIMESTAMP + make_interval(secs => t.lease_seconds),
           trace_span_id = substr(md5(random()::text || t.id::text), 1, 16)
      FROM m WHERE t.id = m.id AND t.status = 'pending'
    RETURNING {TASK_COLUMNS}
), attempts AS (
    INSERT INTO task_attempts (task_id, attempt, agent_id, fencing_token, trace_span_id)
    SELECT id::uuid, attempt, agent_id::uuid, fencing_token, trace_span_id FROM up
), running AS (
    -- A row locked by another transaction is being moved on by it (to running, completed or cancelled).
    UPDATE executions SET status = 'running', updated_at = CURRENT_TIMESTAMP
     WHERE id IN (SELECT e.id FROM executions e WHERE e.id IN (SELECT execution_id::uuid FROM up)
                     AND e.status = 'pending' FOR UPDATE SKIP LOCKED)
)
SELECT up.*, e.trace_id, e.workflow_id::text AS workflow_id FROM up JOIN executions e ON e.id = up.execution_id::uuid
"""


def match(picks: list[Any], wants: list[Want], held: dict[str, int], quarantined: set[str]) -> list[tuple[str, str]]:
    """(task id, agent id) pairs: each pick in queue order to the matching agent with the most free slots."""
    free = {
        w.agent_id: 0 if w.agent_id in quarantined else min(w.free, w.slots - held.get(w.agent_id, 0)) for w in wants
    }
    out = []
    for p in sorted(picks, key=lambda p: (-p["n"], p["enqueued_at"], p["id"])):
        fits = [
            w for w in wants
            if free[w.agent_id] > 0
            and (w.agent_id == p["target"] if p["target"] else p["capability"] in w.capabilities)
            and (p["agent_type"] is None or p["agent_type"] == w.agent_type)
        ]  # fmt: skip
        if fits:
            best = max(fits, key=lambda w: free[w.agent_id])
            free[best.agent_id] -= 1
            out.append((p["id"], best.agent_id))
    return out


_CLAIM_ONE = f"""
WITH held AS (
    SELECT count(*)::int AS n FROM tasks WHERE agent_id = $1 AND status IN ('assigned', 'running')
), quarantined AS (
    SELECT EXISTS (SELECT 1 FROM task_attempts WHERE agent_id = $1 AND outcome = 'expired'
                      AND finished_at > CURRENT_TIMESTAMP - make_interval(secs => $6)) AS yes
), room AS (
    SELECT CASE WHEN q.yes THEN 0 ELSE greatest(0, least($4::int, $5::int - h.n)) END AS n
      FROM held h, quarantined q
), candidates AS (
    -- The head of each queue the agent serves (each of its capabilities, the tasks routed to it),
    -- one ordered index walk each (migration 0013): another capability's backlog is never read.
    SELECT c.* FROM unnest($2::text[]) AS cap(name) CROSS JOIN LATERAL (
        SELECT id, priority, enqueued_at FROM tasks
         WHERE status = 'pending' AND target_agent_id IS NULL AND capability = cap.name
           AND available_at <= CURRENT_TIMESTAMP AND (agent_type IS NULL OR agent_type = $3)
         ORDER BY priority DESC, enqueued_at, id LIMIT (SELECT n FROM room) FOR UPDATE SKIP LOCKED
    ) c
    UNION ALL
    SELECT * FROM (
        SELECT id, priority, enqueued_at FROM tasks
         WHERE status = 'pending' AND target_agent_id = $1
           AND available_at <= CURRENT_TIMESTAMP AND (agent_type IS NULL OR agent_type = $3)
         ORDER BY priority DESC, enqueued_at, id LIMIT (SELECT n FROM room) FOR UPDATE SKIP LOCKED
    ) t
), picked AS (
    SELECT id FROM candidates ORDER BY priority DESC, enqueued_at, id LIMIT (SELECT n FROM room)
), more AS (
    -- Whether the queue holds more for this agent (it then stays in backlog), read without a lock:
    -- a task another claim is taking counts too, which errs towards one more claim, never one less.
    -- Scalar subqueries with ORDER BY ... LIMIT 1 (an EXISTS would lose its ORDER BY): index walks.
    SELECT EXISTS (
        SELECT 1 FROM unnest($2::text[]) AS cap(name) WHERE (
            SELECT id FROM tasks
             WHERE status = 'pending' AND target_agent_id IS NULL AND capability = cap.name
               AND available_at <= CURRENT_TIMESTAMP AND (agent_type IS NULL OR agent_type = $3)
               AND id NOT IN (SELECT id FROM picked)
             ORDER BY priority DESC, enqueued_at, id LIMIT 1) IS NOT NULL
    ) OR (
        SELECT id FROM tasks
         WHERE status = 'pending' AND target_agent_id = $1
           AND available_at <= CURRENT_TIMESTAMP AND (agent_type IS NULL OR agent_type = $3)
           AND id NOT IN (SELECT id FROM picked)
         ORDER BY priority DESC, enqueued_at, id LIMIT 1
    ) IS NOT NULL AS yes
), up AS (
    UPDATE tasks t
       SET status = 'assigned', agent_id = $1, attempt = t.attempt + 1, fencing_token = t.fencing_token + 1,
           started_at = CURRENT_TIMESTAMP,
           lease_expires_at = CURRENT_TIMESTAMP + make_interval(secs => t.lease_seconds),
           trace_span_id = substr(md5(random()::text || t.id::text), 1, 16)
     WHERE t.id = ANY(ARRAY(SELECT id FROM picked))
    RETURNING {TASK_COLUMNS}
), attempts AS (
    INSERT INTO task_attempts (task_id, attempt, agent_id, fencing_token, trace_span_id)
    SELECT id::uuid, attempt, agent_id::uuid, fencing_token, trace_span_id FROM up
), running AS (
    UPDATE executions SET status = 'running', updated_at = CURRENT_TIMESTAMP
     WHERE id IN (SELECT e.id FROM executions e WHERE e.id IN (SELECT execution_id::uuid FROM up)
                     AND e.status = 'pending' FOR UPDATE SKIP LOCKED)
)
SELECT up.*, e.trace_id, e.workflow_id::text AS workflow_id, (SELECT yes FROM more) AS more
  FROM up JOIN executions e ON e.id = up.execution_id::uuid
"""


def _ordered(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (-r["priority"], r["enqueued_at"], r["id"]))


class Claims:
    def __init__(self, pool: asyncpg.Pool, quarantine: float) -> None:
        self.pool = pool
        self.quarantine = quarantine

    async def claim_one(self, want: Want) -> tuple[list[Row], bool]:
        """Lease up to the agent's free slots in one statement; the leases, and whether the queue holds
        more for it than it leased (nothing leased: no, as before; the tick and new work wake it)."""
        rows: list[Row] = await self.pool.fetch(
            _CLAIM_ONE, want.agent_id, sorted(want.capabilities), want.agent_type, want.free, want.slots,
            self.quarantine,
        )  # fmt: skip
        return _ordered(rows), bool(rows) and bool(rows[0]["more"])

    async def claim(self, wants: list[Want]) -> tuple[dict[str, list[Row]], bool]:
        """Lease ready tasks to these agents in one transaction: highest priority first, FIFO within one,
        never more than an agent's free slots (counted in PostgreSQL, across every stream and process),
        nothing to an agent in quarantine. Returns the leases by agent, and whether the queue may hold
        more for them (the pick was cut at its limit)."""
        wants = [w for w in wants if w.free > 0]
        if not wants:
            return {}, False
        limit = sum(w.free for w in wants)
        agents = [w.agent_id for w in wants]
        capabilities = sorted({c for w in wants for c in w.capabilities})
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_HELD_AND_PICKED, agents, capabilities, limit, self.quarantine)
            held = {r["id"]: r["n"] for r in rows if r["kind"] == "h"}
            quarantined = {r["id"] for r in rows if r["kind"] == "q"}
            picks = [r for r in rows if r["kind"] == "p"]
            pairs = match(picks, wants, held, quarantined)
            leased: list[Row] = await conn.fetch(_ASSIGN, [p[0] for p in pairs], [p[1] for p in pairs]) if pairs else []
        out: dict[str, list[Row]] = {}
        for row in _ordered(leased):
            out.setdefault(row["agent_id"], []).append(row)
        return out, len(picks) >= limit
