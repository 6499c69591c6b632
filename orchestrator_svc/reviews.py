"""Review loops: a reviewed step's output counts only once its reviewer (a critic or a judge) accepts it.

A step with `review` (orchestrator_svc/definition.py) runs in rounds, each a task of its own with
its own attempts and leases (orchestrator_svc/newtasks.py names them):

    draft~1 (producer) -> draft~1.review (reviewer) -> accepted: results.draft = draft~1's output
                                                     -> rejected: draft~2 (producer, with the feedback) -> ...

- The reviewer's input: `{"params": review.input, "context", "upstream": the producer's upstream,
  "review": {"step", "round", "max_rounds", "output": the producer's output}}`; it is routed by
  `review.by` (or `by_query`) to an agent of `review.agent_type`.
- It accepts when its output's `accept_when.field` equals `accept_when.equals` (default
  `{"verdict": "accept"}`). Then the step's result is that round's producer output, and the steps
  that depend on it are queued as for any completed step.
- A reject sends the step back to its producer with `upstream.review = {"round", "feedback": the
  reviewer's output, "output": what was rejected}` in the next round's input.
- After `max_rounds` rejects the execution fails (`on_exhausted: "fail"`, the default) or the last
  round's output stands (`"accept"`: the reviewer had the final say over the rounds, not the result).

Runs inside the completion batch's transaction (orchestrator_svc/completions.py), for rounds only.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import asyncpg

from orchestrator_svc import budgets, newtasks
from orchestrator_svc.definition import Review, Step
from orchestrator_svc.newtasks import parse_round, round_name
from orchestrator_svc.outcome import Outcome, Row
from orchestrator_svc.starts import EXECUTION_COLUMNS
from orchestrator_svc.stops import fail_execution
from orchestrator_svc.workflows import WorkflowStore

FINAL = ("completed", "failed", "cancelled")
_LOCK = """SELECT id::text AS id, workflow_id::text AS workflow_id, status, context, priority, results, budget
             FROM executions WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE"""
_ROUND_TASKS = """SELECT id::text AS id, execution_id::text AS execution_id, name, input, output
                    FROM tasks WHERE execution_id = ANY($1::uuid[]) AND strpos(name, '~') > 0"""
_FINISHED = (
    "step_count IS NOT NULL AND "
    "(SELECT count(*) FROM jsonb_object_keys(COALESCE(results, '{}') || $2::jsonb)) >= step_count"
)
_ACCEPT = f"""
UPDATE executions SET results = COALESCE(results, '{{}}') || $2::jsonb,
       status = CASE WHEN {_FINISHED} THEN 'completed' WHEN status = 'waiting_approval' THEN status
                     ELSE 'running' END,
       completed_at = CASE WHEN {_FINISHED} THEN CURRENT_TIMESTAMP ELSE completed_at END,
       updated_at = CURRENT_TIMESTAMP
 WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')
RETURNING {EXECUTION_COLUMNS}"""


def reviewer_step(step: Step, review: Review) -> Step:
    """The step as its reviewer runs it: the review's capability, agent type and params."""
    return dataclasses.replace(
        step,
        capability=review.by,
        capability_query=review.by_query,
        min_score=None,
        agent_type=review.agent_type,
        input=review.input,
        review=None,
    )


def _upstream(task_input: Any) -> dict[str, Any]:
    """The upstream outputs a round's producer was given, without an earlier review's feedback."""
    value = _json(task_input)
    upstream = dict((value or {}).get("upstream") or {})
    upstream.pop("review", None)
    return upstream


class ReviewLoops:
    """Moves review loops on after their round tasks complete (the caller's transaction)."""

    def __init__(self, workflows: WorkflowStore) -> None:
        self.workflows = workflows

    async def advance(self, conn: asyncpg.Connection, completed: list[Row]) -> Outcome:
        """`completed`: completion rows (task_id, execution_id, name) of round tasks."""
        outcome = Outcome()
        if not completed:
            return outcome
        execution_ids = sorted({r["execution_id"] for r in completed})
        executions = {r["id"]: dict(r) for r in await conn.fetch(_LOCK, execution_ids)}
        rounds = {(r["execution_id"], r["name"]): r for r in await conn.fetch(_ROUND_TASKS, execution_ids)}
        new: list[dict[str, Any]] = []
        for row in sorted(completed, key=lambda r: (r["execution_id"], r["name"])):
            execution = executions.get(row["execution_id"])
            parsed = parse_round(row["name"])
            if execution is None or parsed is None or execution["status"] in FINAL:
                continue
            step_id, number, is_review = parsed
            definition = await self.workflows.definition_for(conn, execution["workflow_id"])
            step = definition.step(step_id)
            if step.review is None:
                continue
            producer = rounds[(row["execution_id"], round_name(step_id, number))]
            produced = _json(producer["output"])
            if not is_review:
                new.append(self._reviewer_task(execution, step, step.review, number, producer["input"], produced))
                continue
            verdict = _json(rounds[(row["execution_id"], row["name"])]["output"])
            review = step.review
            if review.accepts(verdict) or (number >= review.max_rounds and review.on_exhausted == "accept"):
                new += await self._accept(conn, execution, definition, step, produced, outcome)
            elif number < review.max_rounds:
                feedback = {"round": number, "feedback": verdict, "output": produced}
                upstream = {**_upstream(producer["input"]), "review": feedback}
                new.append(newtasks.new_task(execution, step, upstream, round_name(step_id, number + 1)))
            else:
                error = f"step {step_id}: not accepted after {review.max_rounds} review rounds"
                outcome.merge(await fail_execution(conn, execution["id"], error))
                execution["status"] = "failed"
        new, spent = await budgets.within(conn, new, {e: x["budget"] for e, x in executions.items()})
        outcome.merge(spent)
        outcome.created += await newtasks.queue(conn, new)
        return outcome

    def _reviewer_task(
        self, execution: dict[str, Any], step: Step, review: Review, number: int, producer_input: Any, output: Any
    ) -> dict[str, Any]:
        task = newtasks.new_task(
            execution, reviewer_step(step, review), _upstream(producer_input), round_name(step.id, number, review=True)
        )
        task["input"]["review"] = {"step": step.id, "round": number, "max_rounds": review.max_rounds, "output": output}
        return task

    async def _accept(
        self, conn: asyncpg.Connection, execution: dict[str, Any], definition: Any, step: Step, output: Any,
        outcome: Outcome,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """The step's result is `output`: record it, finish the execution or queue what became ready."""
        row = await conn.fetchrow(_ACCEPT, execution["id"], {step.id: output})
        if row is None:
            return []
        updated = dict(row)
        execution.update(status=updated["status"], results=updated["results"])
        outcome.executions.append(updated)
        if updated["status"] == "completed":
            outcome.closed.append(updated)
            return []
        results = _json(updated["results"]) or {}
        return [
            newtasks.new_task(execution, s, {d: results[d] for d in s.depends_on})
            for s in definition.dependents(step.id)
            if all(d in results for d in s.depends_on)
        ]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
