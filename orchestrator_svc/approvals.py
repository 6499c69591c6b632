"""Approval gates: a step with `approval` runs only once a governor agent or a person approves it.

When the step becomes ready, its gate is queued instead (orchestrator_svc/newtasks.py names it
`<step>~approval`; its input is the step's, plus `approval = {"step", "by", "capability",
"timeout_seconds"}`):

- `"by": "governor"`: a task for an agent of type governor with the approval's capability. Its
  output decides: `{"approved": true, "reason": "..."}` approves; anything else rejects.
- `"by": "human"`: the gate waits in `waiting_approval` (never leased, nothing polled), and so does
  its execution; POST /api/v1/tasks/{id}/approve or /reject (permission workflow:execute) decides,
  recorded in the gate's output as `{"approved", "by": <the caller's subject>, "reason"}`.

Approved: the step's own task is queued with the same input. Rejected: the execution fails with
`step <id>: rejected by <who>: <reason>`. Undecided after `timeout_seconds`: the gate fails and so
does the execution (`step <id>: approval timed out after <n> s`); the sweep runs with the lease sweep.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from orchestrator_svc import budgets, newtasks
from orchestrator_svc.leases import TASK_COLUMNS
from orchestrator_svc.newtasks import APPROVAL
from orchestrator_svc.outcome import Outcome, Row
from orchestrator_svc.starts import EXECUTION_COLUMNS
from orchestrator_svc.stops import fail_execution
from orchestrator_svc.workflows import WorkflowStore
from ossa_runtime.errors import FailedPrecondition, NotFound

FINAL = ("completed", "failed", "cancelled")
SWEEP_LIMIT = 100
_DECIDE = """UPDATE tasks SET status = 'completed', output = $2, completed_at = CURRENT_TIMESTAMP
              WHERE id = $1 AND status = 'waiting_approval'
          RETURNING id::text AS id, execution_id::text AS execution_id, name, input"""
_OVERDUE = """SELECT id::text AS id, execution_id::text AS execution_id, name, input, timeout_seconds
                FROM tasks
               WHERE strpos(name, '~approval') > 0 AND status IN ('pending', 'waiting_approval')
                 AND created_at + make_interval(secs => timeout_seconds) < CURRENT_TIMESTAMP
               ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED"""
_RESUME = f"""UPDATE executions e SET updated_at = CURRENT_TIMESTAMP,
                     status = CASE WHEN EXISTS (SELECT 1 FROM tasks t WHERE t.execution_id = e.id
                                                   AND t.status = 'waiting_approval') THEN 'waiting_approval'
                                   ELSE 'running' END
               WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')
           RETURNING {EXECUTION_COLUMNS}"""


def is_gate(name: str) -> bool:
    return name.endswith(APPROVAL)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def decide(
    conn: asyncpg.Connection, workflows: WorkflowStore, gate: Row, approved: bool, who: str, reason: str
) -> Outcome:
    """Carry out a decided gate (the caller's transaction): queue the step, or fail the execution."""
    execution = await conn.fetchrow(
        """SELECT id::text AS id, workflow_id::text AS workflow_id, status, context, priority, budget
             FROM executions WHERE id = $1 FOR UPDATE""",
        gate["execution_id"],
    )
    if execution is None or execution["status"] in FINAL:
        return Outcome()
    step_id = gate["name"].removesuffix(APPROVAL)
    if not approved:
        why = f": {reason}" if reason else ""
        return await fail_execution(conn, execution["id"], f"step {step_id}: rejected by {who}{why}")
    definition = await workflows.definition_for(conn, execution["workflow_id"])
    step = definition.step(step_id)
    upstream = dict((_json(gate["input"]) or {}).get("upstream") or {})
    task = newtasks.new_task(execution, step, upstream, approved=True)
    tasks, outcome = await budgets.within(conn, [task], {execution["id"]: execution["budget"]})
    if outcome.closed:
        return outcome
    outcome.created = await newtasks.queue(conn, tasks)
    resumed = await conn.fetchrow(_RESUME, execution["id"])
    if resumed is not None:
        outcome.executions.append(resumed)
    return outcome


async def after_governors(conn: asyncpg.Connection, workflows: WorkflowStore, completed: list[Row]) -> Outcome:
    """Governor gates that completed in a batch (the batch's transaction): their outputs decide."""
    outcome = Outcome()
    if not completed:
        return outcome
    rows = await conn.fetch(
        """SELECT id::text AS id, execution_id::text AS execution_id, name, input, output, agent_id::text AS agent
             FROM tasks WHERE id = ANY($1::uuid[]) ORDER BY execution_id, id""",
        [r["task_id"] for r in completed],
    )
    for gate in rows:
        verdict = _json(gate["output"]) or {}
        approved = isinstance(verdict, dict) and verdict.get("approved") is True
        reason = str(verdict.get("reason", "")) if isinstance(verdict, dict) else ""
        outcome.merge(await decide(conn, workflows, gate, approved, f"governor {gate['agent']}", reason))
    return outcome


class Approvals:
    """A person's decisions (ApproveTask / RejectTask) and the timeout sweep."""

    def __init__(self, pool: asyncpg.Pool, workflows: WorkflowStore) -> None:
        self.pool = pool
        self.workflows = workflows

    async def decide(self, task_id: str, approved: bool, who: str, reason: str) -> tuple[Row, Outcome]:
        """Record a person's decision on a waiting gate; returns the gate as it is now and what changed."""
        decision = {"approved": approved, "by": who, "reason": reason}
        async with self.pool.acquire() as conn, conn.transaction():
            gate = await conn.fetchrow(_DECIDE, task_id, decision)
            if gate is None:
                status = await conn.fetchval("SELECT status FROM tasks WHERE id = $1", task_id)
                if status is None:
                    raise NotFound(f"task {task_id} not found")
                raise FailedPrecondition(f"task {task_id} is {status}, not waiting for approval")
            outcome = await decide(conn, self.workflows, gate, approved, who, reason)
            row = await conn.fetchrow(f"SELECT {TASK_COLUMNS} FROM tasks t WHERE id = $1", task_id)
        return row, outcome

    async def sweep(self) -> Outcome:
        """Fail the gates left undecided past their timeout, and their executions."""
        outcome = Outcome()
        async with self.pool.acquire() as conn, conn.transaction():
            for gate in await conn.fetch(_OVERDUE, SWEEP_LIMIT):
                error = f"approval timed out after {gate['timeout_seconds']} s"
                await conn.execute(
                    """UPDATE tasks SET status = 'failed', error = $2, completed_at = CURRENT_TIMESTAMP,
                              lease_expires_at = NULL WHERE id = $1""",
                    gate["id"],
                    error,
                )
                step_id = gate["name"].removesuffix(APPROVAL)
                outcome.merge(await fail_execution(conn, gate["execution_id"], f"step {step_id}: {error}"))
        return outcome
