"""Completing tasks in batches: one statement marks the tasks, their attempts and their executions.

Per batch, in one transaction:
1. One statement: tasks whose lease is current (fencing token, status leased, and for an agent
   token the holder) become completed; their attempts too; each execution merges the outputs into
   `results` (rows locked in id order, so two batches never deadlock on executions) and becomes
   completed when every step has a result (`step_count`).
2. Only for rows that did not match: why not. The same token of a lease already completed is a
   replay of an acknowledged completion (accepted again, nothing changes); any other token is a
   late result (recorded on its attempt, rejected with FAILED_PRECONDITION) - for that row alone.
3. Only for executions that go on: the steps whose dependencies are now all complete are queued.
4. Only for rounds of reviewed steps (named `step~N`): the review loop moves on
   (orchestrator_svc/reviews.py); their outputs are not results until a reviewer accepts one.
   Only for approval gates (`step~approval`) a governor decided: the step runs or the execution
   fails (orchestrator_svc/approvals.py).

Nothing re-reads sibling tasks: `results` already holds every completed step's output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from orchestrator_svc import approvals, budgets, newtasks
from orchestrator_svc.leases import LateResults, StaleLease
from orchestrator_svc.newtasks import LOOP
from orchestrator_svc.outcome import Outcome, TaskEnd
from orchestrator_svc.reviews import ReviewLoops
from orchestrator_svc.workflows import WorkflowStore
from ossa_runtime.errors import NotFound, PermissionDenied

FINAL = ("completed", "failed", "cancelled")
GOING_ON = ("running", "waiting_approval")
_FINISHED = "e.step_count IS NOT NULL AND (SELECT count(*) FROM jsonb_object_keys(COALESCE(e.results, '{}') || COALESCE(m.outputs, '{}'))) >= e.step_count"  # noqa: E501

_COMPLETE = f"""
WITH i AS (
    SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::jsonb[], $4::uuid[], $5::float8[])
                  AS i(id, token, output, agent, cost)
), done AS (
    UPDATE tasks t SET status = 'completed', output = i.output, completed_at = CURRENT_TIMESTAMP,
           lease_expires_at = NULL, error = NULL
      FROM i
     WHERE t.id = i.id AND t.fencing_token = i.token AND t.status IN ('assigned', 'running')
       AND (i.agent IS NULL OR t.agent_id = i.agent)
    RETURNING t.id, t.execution_id, t.name, t.capability, t.fencing_token, t.agent_id, t.output,
              EXTRACT(EPOCH FROM CURRENT_TIMESTAMP - t.started_at)::float8 AS seconds, i.cost
), attempts AS (
    UPDATE task_attempts a SET outcome = 'completed', finished_at = CURRENT_TIMESTAMP, cost = d.cost
      FROM done d WHERE a.task_id = d.id AND a.fencing_token = d.fencing_token
), m AS (
    SELECT execution_id, jsonb_object_agg(name, output) FILTER (WHERE strpos(name, '~') = 0) AS outputs,
           sum(cost) AS cost
      FROM done GROUP BY execution_id
), locked AS (
    SELECT e.id FROM executions e WHERE e.id IN (SELECT execution_id FROM m) ORDER BY e.id FOR UPDATE
), ex AS (
    UPDATE executions e SET results = COALESCE(e.results, '{{}}') || COALESCE(m.outputs, '{{}}'),
           spent_cost = e.spent_cost + COALESCE(m.cost, 0),
           status = CASE WHEN {_FINISHED} THEN 'completed' WHEN e.status = 'waiting_approval' THEN e.status
                         ELSE 'running' END,
           completed_at = CASE WHEN {_FINISHED} THEN CURRENT_TIMESTAMP ELSE e.completed_at END,
           updated_at = CURRENT_TIMESTAMP
      FROM m, locked l
     WHERE e.id = m.execution_id AND l.id = e.id AND e.status NOT IN ('completed', 'failed', 'cancelled')
    RETURNING e.id, e.workflow_id::text AS workflow_id, e.status, e.started_at, e.completed_at, e.context,
              e.results, e.error, e.retry_count, e.priority, e.trace_id, e.trace_parent_span_id, e.trace_span_id,
              e.step_count, e.budget, e.spent_cost
)
SELECT d.id::text AS task_id, d.execution_id::text AS execution_id, d.name, d.capability, d.fencing_token,
       d.agent_id::text AS agent_id, d.seconds, COALESCE(ex.status, e0.status) AS execution_status,
       ex.workflow_id, ex.started_at, ex.completed_at, ex.context, ex.results, ex.error, ex.retry_count,
       ex.priority, ex.trace_id, ex.trace_parent_span_id, ex.trace_span_id, ex.step_count, ex.budget,
       ex.spent_cost
  FROM done d LEFT JOIN ex ON ex.id = d.execution_id LEFT JOIN executions e0 ON e0.id = d.execution_id
"""

# Why a completion matched no lease: the task, its current lease and who held the presented token.
_MISSES = """
SELECT i.id::text AS id, i.token, t.status, t.fencing_token, e.status AS execution_status,
       COALESCE(a.agent_id, t.agent_id)::text AS holder
  FROM unnest($1::uuid[], $2::bigint[]) AS i(id, token)
  LEFT JOIN tasks t ON t.id = i.id
  LEFT JOIN executions e ON e.id = t.execution_id
  LEFT JOIN task_attempts a ON a.task_id = i.id AND a.fencing_token = i.token
"""

EXECUTION_KEYS = ("workflow_id", "started_at", "completed_at", "context", "results", "error",
                  "retry_count", "priority", "trace_id", "trace_parent_span_id", "trace_span_id", "budget",
                  "spent_cost")  # fmt: skip


@dataclass(frozen=True)
class Completion:
    task_id: str
    token: int
    output: dict[str, Any]
    agent_id: str | None = None  # an agent token completes only its own leases
    cost: float = 0.0  # what the agent reports it cost (budgets: orchestrator_svc/budgets.py)


@dataclass(frozen=True)
class Completed:
    execution_status: str


class Completer:
    def __init__(self, pool: asyncpg.Pool, workflows: WorkflowStore, late: LateResults,
                 steps: Mapping[str, tuple[str, str]]) -> None:  # fmt: skip
        self.pool = pool
        self.workflows = workflows
        self.late = late
        self.steps = steps  # (workflow id, step) of the leases this process handed out (Dispatcher.steps)
        self.reviews = ReviewLoops(workflows)

    def _leaf(self, task_id: str) -> bool:
        """Whether the task is known here to be a step that nothing depends on."""
        step = self.steps.get(task_id)
        if step is None or LOOP in step[1]:
            return False
        definition = self.workflows.cached(step[0])
        return definition is not None and not definition.dependents(step[1])

    async def complete(self, items: list[Completion]) -> tuple[list[Completed | BaseException], Outcome]:
        """Commit a batch; one result per item, and what the batch changed. A batch of steps nothing
        depends on is one statement, its own transaction; otherwise follow-up tasks join it."""
        async with self.pool.acquire() as conn:
            if all(self._leaf(c.task_id) for c in items):
                rows, refused = await self._commit(conn, items)
                over = budgets.over_cost(rows)
                if over or any(r["execution_status"] == "running" and r["step_count"] is None for r in rows):
                    async with conn.transaction():  # over budget, or started before step_count existed
                        advanced = await budgets.fail_over_cost(conn, over)
                        advanced.merge(await self._advance(conn, [r for r in rows if r["execution_id"] not in over]))
                else:
                    advanced = Outcome()
            else:
                async with conn.transaction():
                    rows, refused = await self._commit(conn, items)
                    advanced = await self._follow_up(conn, rows)
        outcome = _outcome(rows).merge(advanced)
        done = {(r["task_id"], r["fencing_token"]): r for r in rows}
        results: list[Completed | BaseException] = []
        for c in items:
            row = done.get((c.task_id, c.token))
            results.append(Completed(row["execution_status"]) if row is not None else refused[(c.task_id, c.token)])
        return results, outcome

    async def _follow_up(self, conn: asyncpg.Connection, rows: list[Any]) -> Outcome:
        """What completions lead to (in their transaction): executions over budget fail; the others
        queue the steps that became ready, move their review loops on, act on governors' decisions."""
        over = budgets.over_cost(rows)
        outcome = await budgets.fail_over_cost(conn, over)
        going_on = [r for r in rows if r["execution_id"] not in over]
        outcome.merge(await self._advance(conn, going_on))
        rounds = [r for r in going_on if LOOP in r["name"] and not approvals.is_gate(r["name"])]
        gates = [r for r in going_on if approvals.is_gate(r["name"])]
        if rounds:
            outcome.merge(await self.reviews.advance(conn, rounds))
        if gates:
            outcome.merge(await approvals.after_governors(conn, self.workflows, gates))
        return outcome

    async def _commit(self, conn: asyncpg.Connection, items: list[Completion]) -> tuple[list[Any], dict[Any, Any]]:
        rows: list[Any] = await conn.fetch(
            _COMPLETE,
            [c.task_id for c in items], [c.token for c in items], [c.output for c in items],
            [c.agent_id for c in items], [c.cost for c in items],
        )  # fmt: skip
        done = {(r["task_id"], r["fencing_token"]) for r in rows}
        misses = [c for c in items if (c.task_id, c.token) not in done]
        if not misses:
            return rows, {}
        if conn.is_in_transaction():
            return rows, await self._refuse(conn, misses)
        async with conn.transaction():
            return rows, await self._refuse(conn, misses)

    async def _refuse(self, conn: asyncpg.Connection, misses: list[Completion]) -> dict[tuple[str, int], Any]:
        rows = await conn.fetch(_MISSES, [c.task_id for c in misses], [c.token for c in misses])
        why = {(r["id"], r["token"]): r for r in rows}
        out: dict[tuple[str, int], Any] = {}
        stale: list[Completion] = []
        for c in misses:
            row = why[(c.task_id, c.token)]
            if row["status"] is None:
                out[(c.task_id, c.token)] = NotFound(f"task {c.task_id} not found")
            elif c.agent_id is not None and row["holder"] not in (None, c.agent_id):
                out[(c.task_id, c.token)] = PermissionDenied(
                    f"task {c.task_id} is leased to agent {row['holder']}, not to agent {c.agent_id}"
                )
            elif row["status"] == "completed" and row["fencing_token"] == c.token:
                out[(c.task_id, c.token)] = Completed(row["execution_status"])  # a replay: acknowledged before
            else:
                stale.append(c)
        if stale:
            await self.late.record(conn, "complete", [(c.task_id, c.token, {"output": c.output}) for c in stale])
            for c in stale:
                out[(c.task_id, c.token)] = StaleLease.of(c.task_id, c.token)
        return out

    async def _advance(self, conn: asyncpg.Connection, rows: list[Any]) -> Outcome:
        """Queue the steps that became ready; finish executions started before step_count existed."""
        outcome = Outcome()
        going_on: dict[str, Any] = {}
        finished_names: dict[str, list[str]] = {}
        for r in rows:
            if r["execution_status"] in GOING_ON and r["workflow_id"] is not None:
                going_on[r["execution_id"]] = r
                finished_names.setdefault(r["execution_id"], []).append(r["name"])
        new: list[dict[str, Any]] = []
        legacy_done: list[str] = []
        for execution_id, r in going_on.items():
            definition = await self.workflows.definition_for(conn, r["workflow_id"])
            results = r["results"] or {}
            if r["step_count"] is None and all(s.id in results for s in definition.steps):
                legacy_done.append(execution_id)
                continue
            execution = {"id": execution_id, "priority": r["priority"], "context": r["context"]}
            for name in finished_names[execution_id]:
                for step in definition.dependents(name):
                    if all(d in results for d in step.depends_on):
                        new.append(newtasks.new_task(execution, step, {d: results[d] for d in step.depends_on}))
        new, spent = await budgets.within(conn, new, {e: r["budget"] for e, r in going_on.items()})
        outcome.merge(spent)
        outcome.created = await newtasks.queue(conn, new)
        if legacy_done:
            rows = await conn.fetch(
                """UPDATE executions SET status = 'completed', completed_at = CURRENT_TIMESTAMP,
                          updated_at = CURRENT_TIMESTAMP
                    WHERE id = ANY($1::uuid[]) AND status = 'running'
                RETURNING id::text AS id, workflow_id::text AS workflow_id, status, started_at, completed_at,
                          context, results, error, retry_count, priority, trace_id, trace_parent_span_id,
                          trace_span_id""",
                legacy_done,
            )
            outcome.executions += [dict(x) for x in rows]
            outcome.closed += [dict(x) for x in rows]
        return outcome


def _outcome(rows: list[Any]) -> Outcome:
    outcome = Outcome()
    seen: set[str] = set()
    for r in rows:
        outcome.completed.append(r["task_id"])
        outcome.ended.append(
            TaskEnd(
                r["capability"],
                "completed",
                r["seconds"],
                "completed",
                r["task_id"],
                r["fencing_token"],
                r["agent_id"] or "",
            )
        )
        if r["workflow_id"] is None or r["execution_id"] in seen:
            continue  # the execution had already ended (nothing merged), or seen in this batch
        seen.add(r["execution_id"])
        execution = {"id": r["execution_id"], **{k: r[k] for k in EXECUTION_KEYS}}
        execution["status"] = r["execution_status"]
        outcome.executions.append(execution)
        if execution["status"] == "completed":
            outcome.closed.append(execution)
    return outcome
