"""Ending an execution early: fail every unfinished task (revoking leases) and the execution itself.

Used when a step fails for good (orchestrator_svc/engine.py), a review loop runs out of rounds
(orchestrator_svc/reviews.py) and, for the tasks, when a user cancels.
"""

from __future__ import annotations

import asyncpg

from orchestrator_svc.outcome import Outcome, Revoked, TaskEnd
from orchestrator_svc.starts import EXECUTION_COLUMNS


async def stop_tasks(conn: asyncpg.Connection, execution_id: str, reason: str) -> tuple[list[Revoked], list[TaskEnd]]:
    """Fail every unfinished task of the execution; returns the leases taken from agents and the ends."""
    rows = await conn.fetch(
        """UPDATE tasks SET status = 'failed', error = $2, completed_at = CURRENT_TIMESTAMP,
                  lease_expires_at = NULL
            WHERE execution_id = $1 AND status IN ('pending', 'assigned', 'running', 'waiting_approval')
        RETURNING id::text AS id, agent_id::text AS agent_id, fencing_token, capability,
                  EXTRACT(EPOCH FROM CURRENT_TIMESTAMP - started_at)::float8 AS seconds""",
        execution_id, reason,
    )  # fmt: skip
    revoked = [Revoked(r["id"], r["agent_id"], r["fencing_token"], reason) for r in rows if r["agent_id"]]
    ended = [
        TaskEnd(r["capability"], "cancelled", r["seconds"], "failed", r["id"], r["fencing_token"], r["agent_id"])
        if r["agent_id"]
        else TaskEnd(r["capability"], None, None, "failed")
        for r in rows
    ]
    if revoked:
        await conn.executemany(
            """UPDATE task_attempts SET outcome = 'cancelled', error = $3, finished_at = CURRENT_TIMESTAMP
                WHERE task_id = $1 AND fencing_token = $2 AND outcome = 'running'""",
            [(r.task_id, r.fencing_token, reason) for r in revoked],
        )
    return revoked, ended


async def fail_execution(conn: asyncpg.Connection, execution_id: str, error: str) -> Outcome:
    revoked, ended = await stop_tasks(conn, execution_id, f"execution failed: {error}")
    execution = await conn.fetchrow(
        f"""UPDATE executions SET status = 'failed', error = $2, completed_at = CURRENT_TIMESTAMP,
                   updated_at = CURRENT_TIMESTAMP
             WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')
         RETURNING {EXECUTION_COLUMNS}""",
        execution_id, error,
    )  # fmt: skip
    closed = [execution] if execution is not None else []
    return Outcome(executions=closed, closed=closed, revoked=revoked, ended=ended)
