"""The orchestrator's Prometheus metrics (names and labels in ossa_runtime.metrics).

- `record(outcome)`, called after the change committed: every task attempt that ended goes into
  ossa_task_duration_seconds (claim -> end, by capability and how it ended), every task that
  reached a final status into ossa_tasks_completed_total (completed or failed, which includes
  tasks failed because their execution failed or was cancelled), and an execution that reached
  a final status into ossa_workflow_completion_time (started_at -> completed_at, by status).
- `queue_gauges(pool)`: ossa_queue_size (tasks pending in PostgreSQL, the system of record, so
  every orchestrator process reports the same number) and ossa_workflows_running (executions
  pending or running), read when /metrics is scraped.
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from orchestrator_svc.outcome import Outcome
from ossa_runtime import metrics


def record(outcome: Outcome) -> None:
    for end in outcome.ended:
        if end.attempt is not None and end.seconds is not None:
            metrics.observe_attempt(end.capability, end.attempt, end.seconds)
        if end.final is not None:
            metrics.count_task(end.capability, end.final)
    for execution in outcome.closed:
        if execution["completed_at"] is not None and execution["started_at"] is not None:
            seconds = (execution["completed_at"] - execution["started_at"]).total_seconds()
            metrics.observe_workflow(execution["status"], seconds)


def queue_gauges(pool: asyncpg.Pool) -> metrics.SampledGauges:
    async def sample() -> Mapping[str, float]:
        row = await pool.fetchrow(
            """SELECT (SELECT count(*) FROM tasks WHERE status = 'pending') AS queued,
                      (SELECT count(*) FROM executions
                        WHERE status IN ('pending', 'running', 'waiting_approval')) AS running"""
        )
        return {metrics.QUEUE_SIZE: row["queued"], metrics.WORKFLOWS_RUNNING: row["running"]}

    return metrics.SampledGauges([metrics.QUEUE_SIZE, metrics.WORKFLOWS_RUNNING], sample)
