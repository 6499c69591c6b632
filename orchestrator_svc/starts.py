"""Starting executions in batches: one statement inserts every execution of a batch and its root tasks.

    WITH e AS (INSERT INTO executions ... SELECT FROM unnest(...) JOIN workflows (published only)
               ON CONFLICT (idempotency_key) DO NOTHING RETURNING ...),
         t AS (INSERT INTO tasks ... SELECT FROM unnest(...) JOIN e RETURNING ...)
    SELECT ... FROM e UNION ALL SELECT ... FROM t

The statement is its own transaction: an execution and its root tasks commit together or not at
all. Ids are chosen here (uuid4), so root tasks reference their execution in the same statement.
An item that inserted nothing either repeated an idempotency key (its existing execution is
returned: never a second one) or named a workflow that stopped being published meanwhile.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from orchestrator_svc import newtasks
from orchestrator_svc.definition import Definition
from ossa_runtime.errors import FailedPrecondition
from ossa_runtime.tracing import new_span_id

EXECUTION_COLUMNS = """id::text AS id, workflow_id::text AS workflow_id, status, started_at, completed_at,
    context, results, error, retry_count, priority, trace_id, trace_parent_span_id, trace_span_id, budget,
    spent_cost"""

# Sync match: a root task handed straight to an idle agent of this process (the dispatcher reserved a
# slot) is inserted already leased, with its first attempt, when PostgreSQL agrees: nothing of its
# capability is queued at its priority or above (queue order first: the head of the capability's
# queue, one walk of idx_tasks_ready_capability), the agent is not in quarantine and still has the
# slot ($25: the reserved task's rank among this batch's tasks for that agent). `r` is MATERIALIZED so
# that those checks run for the reserved tasks only whatever the plan: the statement runs with a
# generic plan (ossa_runtime/db.py, GENERIC_PLANS), and one ran the queue-head check for every root
# task of the batch before joining `r`.
_INSERT = f"""
WITH y0 AS (
    SELECT * FROM {newtasks.unnest(10)}
), r AS MATERIALIZED (
    SELECT r.id, r.agent, r.slots, r.rank, y0.priority, y0.capability
      FROM unnest($22::uuid[], $23::uuid[], $24::int[], $25::int[]) AS r(id, agent, slots, rank)
      JOIN y0 ON y0.id = r.id
), m AS (
    SELECT r.id, r.agent FROM r
     WHERE NOT COALESCE((SELECT p.priority >= r.priority FROM tasks p
                          WHERE p.status = 'pending' AND p.capability = r.capability
                            AND p.target_agent_id IS NULL AND p.available_at <= CURRENT_TIMESTAMP
                          ORDER BY p.priority DESC, p.enqueued_at, p.id LIMIT 1), false)
       AND NOT EXISTS (SELECT 1 FROM task_attempts a WHERE a.agent_id = r.agent AND a.outcome = 'expired'
                          AND a.finished_at > CURRENT_TIMESTAMP - make_interval(secs => $26))
       AND (SELECT count(*) FROM tasks h WHERE h.agent_id = r.agent AND h.status IN ('assigned', 'running'))
           + r.rank <= r.slots
), e AS (
    INSERT INTO executions (id, workflow_id, status, context, priority, idempotency_key, trace_id,
                            trace_parent_span_id, trace_span_id, step_count)
    SELECT x.id, x.workflow_id,
           CASE WHEN EXISTS (SELECT 1 FROM m JOIN y0 ON y0.id = m.id WHERE y0.execution_id = x.id)
                THEN 'running'
                WHEN EXISTS (SELECT 1 FROM y0 WHERE y0.execution_id = x.id AND {newtasks.WAITS.format("y0")})
                THEN 'waiting_approval' ELSE 'pending' END,
           x.context, x.priority, x.idempotency_key, x.trace_id, x.trace_parent_span_id, x.trace_span_id,
           x.step_count
      FROM unnest($1::uuid[], $2::uuid[], $3::jsonb[], $4::int[], $5::text[], $6::text[], $7::text[],
                  $8::text[], $9::int[])
           AS x(id, workflow_id, context, priority, idempotency_key, trace_id, trace_parent_span_id,
                trace_span_id, step_count)
      JOIN workflows w ON w.id = x.workflow_id AND w.status = 'published'
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, started_at, status
), t AS (
    INSERT INTO tasks (id, execution_id, name, status, priority, input, timeout_seconds, capability, agent_type,
                       max_retries, lease_seconds, capability_query, routing_min_score, agent_id, attempt,
                       fencing_token, started_at, lease_expires_at, trace_span_id)
    SELECT y0.id, y0.execution_id, y0.name,
           CASE WHEN m.id IS NOT NULL THEN 'assigned' WHEN {newtasks.WAITS.format("y0")} THEN 'waiting_approval'
                ELSE 'pending' END,
           y0.priority, y0.input, y0.timeout_seconds, y0.capability, y0.agent_type, y0.max_retries,
           y0.lease_seconds, y0.capability_query, y0.routing_min_score, m.agent,
           CASE WHEN m.id IS NULL THEN 0 ELSE 1 END, CASE WHEN m.id IS NULL THEN 0 ELSE 1 END,
           CASE WHEN m.id IS NULL THEN NULL ELSE CURRENT_TIMESTAMP END,
           CASE WHEN m.id IS NULL THEN NULL
                ELSE CURRENT_TIMESTAMP + make_interval(secs => y0.lease_seconds) END,
           CASE WHEN m.id IS NULL THEN NULL ELSE substr(md5(random()::text || y0.id::text), 1, 16) END
      FROM y0 JOIN e ON e.id = y0.execution_id LEFT JOIN m ON m.id = y0.id
    RETURNING id, enqueued_at, status, agent_id, started_at, lease_expires_at, trace_span_id
), a AS (
    INSERT INTO task_attempts (task_id, attempt, agent_id, fencing_token, trace_span_id)
    SELECT id, 1, agent_id, 1, trace_span_id FROM t WHERE status = 'assigned'
)
SELECT 'e' AS kind, id::text AS id, started_at AS at, status, NULL::text AS agent_id, NULL::timestamptz AS expires,
       NULL::text AS span FROM e
UNION ALL
SELECT 't', id::text, enqueued_at, status, agent_id::text, lease_expires_at, trace_span_id FROM t
"""


@dataclass(frozen=True)
class StartItem:
    """One execution to start: its (published) workflow, as the caller resolved it."""

    workflow_id: str
    definition: Definition
    context: dict[str, Any]
    priority: int | None
    idempotency_key: str | None
    trace: tuple[str, str] = ("", "")  # (trace_id, span_id) of the call that started it
    budget: dict[str, float] | None = None  # orchestrator_svc/budgets.py


@dataclass
class Started:
    execution: dict[str, Any]
    tasks: list[dict[str, Any]] = field(default_factory=list)  # root tasks queued (empty if not created)
    created: bool = True  # False: an earlier execution with the same idempotency key
    leased: list[dict[str, Any]] = field(default_factory=list)  # root tasks leased at once (sync match)


@dataclass(frozen=True)
class Reservation:
    """A slot of an idle local agent set aside for a root task (Dispatcher.reserve)."""

    agent_id: str
    slots: int
    rank: int  # 1 for the agent's first reserved task of the batch, 2 for its second, ...


def plan(item: StartItem) -> Started:
    trace_id, parent_span_id = item.trace
    execution = {
        "id": str(uuid.uuid4()),
        "workflow_id": item.workflow_id,
        "status": "pending",
        "started_at": None,
        "completed_at": None,
        "context": item.context,
        "results": {},
        "error": None,
        "retry_count": 0,
        "priority": item.priority,
        "idempotency_key": item.idempotency_key,
        "trace_id": trace_id or None,
        "trace_parent_span_id": parent_span_id or None,
        "trace_span_id": new_span_id() if trace_id else None,
        "step_count": len(item.definition.steps),
        "budget": item.budget,
        "spent_cost": 0.0,
    }
    return Started(execution, [newtasks.new_task(execution, s, {}) for s in item.definition.roots()])


_E = ("id", "workflow_id", "context", "priority", "idempotency_key", "trace_id", "trace_parent_span_id",
      "trace_span_id", "step_count")  # fmt: skip


async def start_many(
    pool: asyncpg.Pool,
    plans: list[Started],
    reserved: dict[str, Reservation],
    quarantine: float,
    atomic: bool = False,
) -> list[Started | BaseException]:
    """Insert the executions and their root tasks in one statement (leasing those with a reserved slot
    when PostgreSQL agrees); one result per plan, in order. `atomic`: a plan that cannot start fails
    the whole call (nothing is stored) instead of itself."""
    async with pool.acquire() as conn:
        if not atomic and not any(p.execution["budget"] for p in plans):  # the statement is its own transaction
            return await _insert(conn, plans, reserved, quarantine, atomic)
        async with conn.transaction():
            return await _insert(conn, plans, reserved, quarantine, atomic)


async def _insert(conn: asyncpg.Connection, plans: list[Started], reserved: dict[str, Reservation],
                  quarantine: float, atomic: bool) -> list[Started | BaseException]:  # fmt: skip
    executions = [p.execution for p in plans]
    tasks = [t for p in plans for t in p.tasks]
    r_ids = list(reserved)
    r_args = [r_ids, [reserved[i].agent_id for i in r_ids], [reserved[i].slots for i in r_ids],
              [reserved[i].rank for i in r_ids]]  # fmt: skip
    rows = await conn.fetch(_INSERT, *newtasks.columns(executions, _E), *newtasks.columns(tasks), *r_args, quarantine)
    by_id = {r["id"]: r for r in rows}
    inserted = {r["id"] for r in rows if r["kind"] == "e"}
    missing = [p for p in plans if p.execution["id"] not in inserted]
    existing = await _existing(conn, [p.execution["idempotency_key"] for p in missing]) if missing else {}
    budgeted = [p.execution for p in plans if p.execution["budget"] and p.execution["id"] in inserted]
    if budgeted:  # in the statement's transaction: no task of theirs is leased before its budget holds
        await conn.execute(
            """UPDATE executions e SET budget = b.budget,
                      deadline = e.started_at + make_interval(secs => (b.budget->>'max_seconds')::int)
                 FROM unnest($1::uuid[], $2::jsonb[]) AS b(id, budget) WHERE e.id = b.id""",
            [x["id"] for x in budgeted], [x["budget"] for x in budgeted],
        )  # fmt: skip
    out = [_result(plan, inserted, by_id, existing) for plan in plans]
    if atomic:
        for result in out:
            if isinstance(result, BaseException):
                raise result  # rolls the caller's transaction back
    return out


def _result(plan: Started, inserted: set[str], rows: dict[str, Any],
            existing: dict[str, dict[str, Any]]) -> Started | BaseException:  # fmt: skip
    execution = plan.execution
    if execution["id"] in inserted:
        row = rows[execution["id"]]
        execution["started_at"], execution["status"] = row["at"], row["status"]
        queued = []
        for task in plan.tasks:
            t = rows[task["id"]]
            task["enqueued_at"] = t["at"]
            if t["status"] == "assigned":
                plan.leased.append(_lease(execution, task, t))
            elif t["status"] == "pending":  # not a gate waiting for a person
                queued.append(task)
        plan.tasks = queued
        return plan
    if execution["idempotency_key"] in existing:
        return Started(existing[execution["idempotency_key"]], [], created=False)
    return FailedPrecondition(f"workflow {execution['workflow_id']} is no longer published: only published "
                              "workflows run")  # fmt: skip


def _lease(execution: dict[str, Any], task: dict[str, Any], row: Any) -> dict[str, Any]:
    """A root task leased by the start itself, as a claim returns it (TASK_COLUMNS, trace_id, workflow_id)."""
    return {
        **task, "status": "assigned", "agent_id": row["agent_id"], "attempt": 1, "fencing_token": 1,
        "started_at": execution["started_at"], "lease_expires_at": row["expires"], "trace_span_id": row["span"],
        "output": None, "error": None, "completed_at": None, "routing_score": None, "routing_note": None,
        "trace_id": execution["trace_id"], "workflow_id": execution["workflow_id"],
    }  # fmt: skip


async def _existing(conn: asyncpg.Connection, keys: list[str | None]) -> dict[str, dict[str, Any]]:
    wanted = [k for k in keys if k]
    if not wanted:
        return {}
    rows = await conn.fetch(
        f"SELECT {EXECUTION_COLUMNS}, idempotency_key FROM executions WHERE idempotency_key = ANY($1::text[])", wanted
    )
    return {r["idempotency_key"]: dict(r) for r in rows}
