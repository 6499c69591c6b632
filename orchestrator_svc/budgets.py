"""Budgets: an execution started with `budget = {max_tasks, max_seconds, max_cost}` fails when it has
spent one of them, with `budget exhausted: ...` as its error; its unfinished tasks are failed with it
and leases revoked (orchestrator_svc/stops.py).

- max_tasks: tasks it may create (every review round, approval gate and step counts; a retried task
  once). Checked when tasks are queued: the batch that would pass the bound queues none of them.
- max_seconds: from its start; its `deadline` is swept with the leases.
- max_cost: the sum of the `cost` agents report on completion (CompleteTaskRequest.cost), kept in
  `spent_cost`; checked after each completion batch (an execution that completed with it stands).

Executions without a budget cost nothing here: every check first looks at the rows in hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from orchestrator_svc.outcome import Outcome, Row
from orchestrator_svc.stops import fail_execution

FINAL = ("completed", "failed", "cancelled")
SWEEP_LIMIT = 100
_OVERDUE = """SELECT id::text AS id, (budget->>'max_seconds')::int AS seconds FROM executions
               WHERE deadline IS NOT NULL AND deadline < CURRENT_TIMESTAMP
                 AND status IN ('pending', 'running', 'waiting_approval')
               ORDER BY deadline LIMIT $1 FOR UPDATE SKIP LOCKED"""


def bound(budget: Any, key: str) -> float | None:
    """One bound of a budget (None: unbounded)."""
    value = budget.get(key) if isinstance(budget, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None


async def within(
    conn: asyncpg.Connection, tasks: list[dict[str, Any]], budgets: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], Outcome]:
    """The tasks that fit their executions' max_tasks; the executions they would overrun fail."""
    limits = {e: bound(b, "max_tasks") for e, b in budgets.items()}
    bounded = sorted({t["execution_id"] for t in tasks if limits.get(t["execution_id"])})
    if not bounded:
        return tasks, Outcome()
    rows = await conn.fetch(
        "SELECT execution_id::text AS id, count(*)::int AS n FROM tasks WHERE execution_id = ANY($1::uuid[])"
        " GROUP BY execution_id",
        bounded,
    )
    used = {r["id"]: r["n"] for r in rows}
    outcome = Outcome()
    over: set[str] = set()
    for execution_id in bounded:
        wanted = sum(1 for t in tasks if t["execution_id"] == execution_id)
        limit = limits[execution_id] or 0
        if used.get(execution_id, 0) + wanted > limit:
            over.add(execution_id)
            outcome.merge(await fail_execution(conn, execution_id, f"budget exhausted: max_tasks {limit:g} reached"))
    return [t for t in tasks if t["execution_id"] not in over], outcome


def over_cost(rows: list[Row]) -> dict[str, str]:
    """Executions (id -> error) whose reported cost reached max_cost and that did not end meanwhile."""
    out: dict[str, str] = {}
    for r in rows:
        limit = bound(r["budget"], "max_cost")
        spent = r["spent_cost"] or 0.0
        if limit is not None and spent >= limit and r["execution_status"] not in FINAL:
            out[r["execution_id"]] = f"budget exhausted: cost {spent:g} of max_cost {limit:g}"
    return out


async def fail_over_cost(conn: asyncpg.Connection, over: dict[str, str]) -> Outcome:
    outcome = Outcome()
    for execution_id, error in sorted(over.items()):
        outcome.merge(await fail_execution(conn, execution_id, error))
    return outcome


async def sweep(pool: asyncpg.Pool) -> Outcome:
    """Fail the executions whose max_seconds ran out."""
    outcome = Outcome()
    async with pool.acquire() as conn, conn.transaction():
        for row in await conn.fetch(_OVERDUE, SWEEP_LIMIT):
            outcome.merge(
                await fail_execution(conn, row["id"], f"budget exhausted: max_seconds {row['seconds']} passed")
            )
    return outcome
