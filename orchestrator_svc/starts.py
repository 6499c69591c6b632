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
    context, results, error, retry_count, priority, trace_id, trace_parent_span_id, trace_span_id"""

_INSERT = f"""
WITH e AS (
    INSERT INTO executions (id, workflow_id, status, context, priority, idempotency_key, trace_id,
                            trace_parent_span_id, trace_span_id, step_count)
    SELECT x.id, x.workflow_id, 'pending', x.context, x.priority, x.idempotency_key, x.trace_id,
           x.trace_parent_span_id, x.trace_span_id, x.step_count
      FROM unnest($1::uuid[], $2::uuid[], $3::jsonb[], $4::int[], $5::text[], $6::text[], $7::text[],
                  $8::text[], $9::int[])
           AS x(id, workflow_id, context, priority, idempotency_key, trace_id, trace_parent_span_id,
                trace_span_id, step_count)
      JOIN workflows w ON w.id = x.workflow_id AND w.status = 'published'
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, started_at
), t AS (
    {newtasks.INSERTED}
      FROM {newtasks.unnest(10)}
      JOIN e ON e.id = y.execution_id
    RETURNING id, enqueued_at
)
SELECT 'e' AS kind, id::text AS id, started_at AS at FROM e
UNION ALL
SELECT 't' AS kind, id::text AS id, enqueued_at AS at FROM t
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


@dataclass
class Started:
    execution: dict[str, Any]
    tasks: list[dict[str, Any]] = field(default_factory=list)  # root tasks queued (empty if not created)
    created: bool = True  # False: an earlier execution with the same idempotency key


def _plan(item: StartItem) -> Started:
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
    }
    return Started(execution, [newtasks.new_task(execution, s, {}) for s in item.definition.roots()])


_E = ("id", "workflow_id", "context", "priority", "idempotency_key", "trace_id", "trace_parent_span_id",
      "trace_span_id", "step_count")  # fmt: skip


async def start_many(pool: asyncpg.Pool, items: list[StartItem], atomic: bool = False) -> list[Started | BaseException]:
    """Insert the executions and their root tasks in one statement; one result per item, in order.
    `atomic`: an item that cannot start fails the whole call (nothing is stored) instead of itself."""
    plans = [_plan(item) for item in items]
    async with pool.acquire() as conn:
        if not atomic:  # the statement is its own transaction
            return await _insert(conn, plans, atomic)
        async with conn.transaction():
            return await _insert(conn, plans, atomic)


async def _insert(conn: asyncpg.Connection, plans: list[Started], atomic: bool) -> list[Started | BaseException]:
    executions = [p.execution for p in plans]
    tasks = [t for p in plans for t in p.tasks]
    rows = await conn.fetch(_INSERT, *newtasks.columns(executions, _E), *newtasks.columns(tasks))
    at = {r["id"]: r["at"] for r in rows}
    inserted = {r["id"] for r in rows if r["kind"] == "e"}
    missing = [p for p in plans if p.execution["id"] not in inserted]
    existing = await _existing(conn, [p.execution["idempotency_key"] for p in missing]) if missing else {}
    out = [_result(plan, inserted, at, existing) for plan in plans]
    if atomic:
        for result in out:
            if isinstance(result, BaseException):
                raise result  # rolls the caller's transaction back
    return out


def _result(plan: Started, inserted: set[str], at: dict[str, Any],
            existing: dict[str, dict[str, Any]]) -> Started | BaseException:  # fmt: skip
    execution = plan.execution
    if execution["id"] in inserted:
        execution["started_at"] = at[execution["id"]]
        for task in plan.tasks:
            task["enqueued_at"] = at[task["id"]]
        return plan
    if execution["idempotency_key"] in existing:
        return Started(existing[execution["idempotency_key"]], [], created=False)
    return FailedPrecondition(f"workflow {execution['workflow_id']} is no longer published: only published "
                              "workflows run")  # fmt: skip


async def _existing(conn: asyncpg.Connection, keys: list[str | None]) -> dict[str, dict[str, Any]]:
    wanted = [k for k in keys if k]
    if not wanted:
        return {}
    rows = await conn.fetch(
        f"SELECT {EXECUTION_COLUMNS}, idempotency_key FROM executions WHERE idempotency_key = ANY($1::text[])", wanted
    )
    return {r["idempotency_key"]: dict(r) for r in rows}
