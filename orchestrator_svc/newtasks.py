"""Tasks as they are queued: one per step that became ready, with its input.

A task's input is `{"params": step.input, "context": execution.context, "upstream": {dep: output}}`.
Ids are chosen here (uuid4) so that a batch can insert executions and their tasks in one statement.

A reviewed step runs as rounds (orchestrator_svc/reviews.py), each round's tasks named with `~`,
which step ids cannot contain: `draft~1` (the producer), `draft~1.review` (its reviewer), `draft~2`...
Only plain step names count as results of the execution. A step with an approval is first a gate
(orchestrator_svc/approvals.py), `deploy~approval`: for a governor a task like any other; for a
person one that waits in `waiting_approval` (no capability, never leased) until someone decides.
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
# A gate for a person (an approval task without capability) waits instead of being queued.
WAITS = "strpos({0}.name, '~approval') > 0 AND {0}.capability = ''"
INSERTED = f"""INSERT INTO tasks (id, execution_id, name, status, priority, input, timeout_seconds, capability,
                   agent_type, max_retries, lease_seconds, capability_query, routing_min_score)
    SELECT y.id, y.execution_id, y.name, CASE WHEN {WAITS.format("y")} THEN 'waiting_approval' ELSE 'pending' END,
           y.priority, y.input, y.timeout_seconds, y.capability,
           y.agent_type, y.max_retries, y.lease_seconds, y.capability_query, y.routing_min_score"""


def unnest(first: int) -> str:
    """The unnest(...) of the COLUMNS arrays, bound to $first ... $first+11."""
    return UNNEST.format(*(f"${n}" for n in range(first, first + len(COLUMNS))))


LOOP = "~"
REVIEW_SUFFIX = ".review"
APPROVAL = "~approval"


def round_name(step_id: str, round_: int, review: bool = False) -> str:
    """The task name of a reviewed step's round: its producer (`draft~2`) or reviewer (`draft~2.review`)."""
    return f"{step_id}{LOOP}{round_}{REVIEW_SUFFIX if review else ''}"


def parse_round(name: str) -> tuple[str, int, bool] | None:
    """(step id, round, is the reviewer) of a round's task name; None for a plain step's task."""
    step_id, sep, rest = name.partition(LOOP)
    if not sep:
        return None
    review = rest.endswith(REVIEW_SUFFIX)
    number = rest.removesuffix(REVIEW_SUFFIX)
    return (step_id, int(number), review) if number.isdigit() else None


def step_task_name(step: Step) -> str:
    """The name of the task that runs `step` (a reviewed step's first round)."""
    return round_name(step.id, 1) if step.review else step.id


def gate_task(execution: Any, step: Step, upstream: dict[str, Any]) -> dict[str, Any]:
    """The approval gate of `step`: a governor's task, or a person's (no capability: it waits)."""
    assert step.approval is not None
    governor = step.approval.by == "governor"
    task = new_task(execution, step, upstream, step.id + APPROVAL, approved=True)
    task.update(
        capability=step.approval.capability if governor else "",
        capability_query=None,
        routing_min_score=None,
        agent_type="governor" if governor else None,
        timeout_seconds=step.approval.timeout_seconds,
        lease_seconds=min(step.lease_seconds, step.approval.timeout_seconds),
        status="pending" if governor else "waiting_approval",
    )
    task["input"]["approval"] = {
        "step": step.id,
        "by": step.approval.by,
        "capability": step.capability or step.capability_query,
        "timeout_seconds": step.approval.timeout_seconds,
    }
    return task


def new_task(
    execution: Any, step: Step, upstream: dict[str, Any], name: str | None = None, approved: bool = False
) -> dict[str, Any]:
    """The task for `step` (its approval gate first, unless `approved`; a reviewed step's first round
    unless `name` says otherwise)."""
    if step.approval is not None and not approved and name is None:
        return gate_task(execution, step, upstream)
    return {
        "id": str(uuid.uuid4()),
        "execution_id": execution["id"],
        "name": name or step_task_name(step),
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
            ON CONFLICT (execution_id, name) DO NOTHING RETURNING id::text AS id, enqueued_at, status""",
        *columns(tasks),
    )
    enqueued = {r["id"]: r for r in rows}
    out = []
    for task in tasks:
        if task["id"] in enqueued:
            task["enqueued_at"] = enqueued[task["id"]]["enqueued_at"]
            task["status"] = enqueued[task["id"]]["status"]
            out.append(task)
    return out


async def queue(conn: asyncpg.Connection, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert the tasks; returns those queued (for the mirror and the dispatchers). Gates that wait for
    a person are not queued: their executions show `waiting_approval` instead."""
    inserted = await insert(conn, tasks)
    waiting = sorted({t["execution_id"] for t in inserted if t["status"] == "waiting_approval"})
    if waiting:
        await conn.execute(
            """UPDATE executions SET status = 'waiting_approval', updated_at = CURRENT_TIMESTAMP
                WHERE id = ANY($1::uuid[]) AND status NOT IN ('completed', 'failed', 'cancelled')""",
            waiting,
        )
    return [t for t in inserted if t["status"] == "pending"]
