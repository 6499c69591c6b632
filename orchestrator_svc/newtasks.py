"""Tasks as they are queued: one per step that became ready, with its input.

A task's input is `{"params": step.input, "context": execution.context, "upstream": {dep: output}}`.
Ids are chosen here (uuid4) so that a batch can insert executions and their tasks in one statement.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from orchestrator_svc.definition import Step

# The columns a new task is inserted with, in the order of the unnest() arrays below.
COLUMNS = ("id", "execution_id", "name", "priority", "input", "timeout_seconds", "capability", "agent_type",
           "max_retries", "lease_seconds", "capability_query", "routing_min_score")  # fmt: skip
UNNEST = """unnest({}::uuid[], {}::uuid[], {}::text[], {}::int[], {}::jsonb[], {}::int[], {}::text[], {}::text[],
                   {}::int[], {}::int[], {}::text[], {}::real[])
           AS y(id, execution_id, name, priority, input, timeout_seconds, capability, agent_type, max_retries,
                lease_seconds, capability_query, routing_min_score)"""
INSERTED = """INSERT INTO tasks (id, execution_id, name, status, priority, input, timeout_seconds, capability,
                   agent_type, max_retries, lease_seconds, capability_query, routing_min_score)
    SELECT y.id, y.execution_id, y.name, 'pending', y.priority, y.input, y.timeout_seconds, y.capability,
           y.agent_type, y.max_retries, y.lease_seconds, y.capability_query, y.routing_min_score"""


def unnest(first: int) -> str:
    """The unnest(...) of the COLUMNS arrays, bound to $first ... $first+11."""
    return UNNEST.format(*(f"${n}" for n in range(first, first + len(COLUMNS))))


def new_task(execution: Any, step: Step, upstream: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "execution_id": execution["id"],
        "name": step.id,
        "status": "pending",
        "priority": execution["priority"] or step.priority,
        "input": {"params": step.input, "context": execution["context"] or {}, "upstream": upstream},
        "timeout_seconds": step.timeout_seconds,
        "capability": step.capability,
        "agent_type": step.agent_type,
        "max_retries": step.max_retries,
        "lease_seconds": step.lease_seconds,
        "capability_query": step.capability_query or None,
        "routing_min_score": step.min_score,
        "target_agent_id": None,
    }


def columns(rows: list[dict[str, Any]], names: tuple[str, ...] = COLUMNS) -> list[list[Any]]:
    """Rows as one list per column, for unnest()."""
    return [[row[name] for row in rows] for name in names]


async def insert(conn: asyncpg.Connection, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Queue the tasks (a step already queued for its execution is skipped); returns those inserted."""
    if not tasks:
        return []
    rows = await conn.fetch(
        f"""{INSERTED} FROM {unnest(1)}
            ON CONFLICT (execution_id, name) DO NOTHING RETURNING id::text AS id, enqueued_at""",
        *columns(tasks),
    )
    enqueued = {r["id"]: r["enqueued_at"] for r in rows}
    out = []
    for task in tasks:
        if task["id"] in enqueued:
            task["enqueued_at"] = enqueued[task["id"]]
            out.append(task)
    return out
