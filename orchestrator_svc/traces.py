"""One trace per workflow execution: its span and one span per task attempt.

    StartExecution (server span, child of the caller's: REST via Envoy, grpcurl, an SDK)
    └── workflow.execution <name>            started_at → completed_at
        ├── task.attempt <step> #1           leased → completed / failed / expired / cancelled
        │   └── task.run <step>              (the agent, ossa_sdk) → CompleteTask / FailTask calls
        └── task.attempt <step> #2 ...

The span ids are chosen when the execution starts (engine.start) and when an attempt is leased
(leases.claim), stored in PostgreSQL and handed to the agent in its Assignment's `traceparent`;
the spans themselves are recorded here, after the change that ended them committed, by whichever
orchestrator process made that change. Recording costs one read, so it happens only while spans
are exported (ossa_runtime.tracing.exporting()).
"""

from __future__ import annotations

import logging

import asyncpg

from orchestrator_svc.outcome import Outcome, Row
from ossa_runtime import tracing

log = logging.getLogger("ossa.orchestrator")


async def _attempts(pool: asyncpg.Pool, outcome: Outcome) -> None:
    keys = [(end.task_id, end.token) for end in outcome.ended if end.attempt is not None and end.task_id]
    if not keys:
        return
    rows = await pool.fetch(
        """SELECT a.task_id::text AS task_id, a.attempt, a.agent_id::text AS agent_id, a.fencing_token,
                  a.outcome, a.error, a.started_at, a.finished_at, a.trace_span_id, a.late_results,
                  t.name, t.capability, t.execution_id::text AS execution_id,
                  e.trace_id, e.trace_span_id AS execution_span_id
             FROM task_attempts a JOIN tasks t ON t.id = a.task_id JOIN executions e ON e.id = t.execution_id
            WHERE (a.task_id, a.fencing_token) IN (SELECT * FROM unnest($1::uuid[], $2::bigint[]))""",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    for r in rows:
        if r["finished_at"] is None:
            continue
        tracing.record_span(
            f"task.attempt {r['name']}",
            trace_id=r["trace_id"] or "",
            span_id=r["trace_span_id"] or "",
            parent_span_id=r["execution_span_id"] or "",
            start=r["started_at"],
            end=r["finished_at"],
            attributes={
                "ossa.execution_id": r["execution_id"],
                "ossa.task_id": r["task_id"],
                "ossa.step": r["name"],
                "ossa.capability": r["capability"],
                "ossa.attempt": r["attempt"],
                "ossa.agent_id": r["agent_id"],
                "ossa.fencing_token": r["fencing_token"],
                "ossa.outcome": r["outcome"],
            },
            error=(r["error"] or r["outcome"]) if r["outcome"] != "completed" else None,
        )


async def _execution(pool: asyncpg.Pool, execution: Row) -> None:
    if execution["completed_at"] is None:
        return
    workflow = await pool.fetchrow("SELECT name, version FROM workflows WHERE id = $1", execution["workflow_id"])
    name = f"{workflow['name']}@{workflow['version']}" if workflow else execution["workflow_id"]
    tracing.record_span(
        f"workflow.execution {name}",
        trace_id=execution["trace_id"] or "",
        span_id=execution["trace_span_id"] or "",
        parent_span_id=execution["trace_parent_span_id"] or "",
        start=execution["started_at"],
        end=execution["completed_at"],
        attributes={
            "ossa.execution_id": execution["id"],
            "ossa.workflow_id": execution["workflow_id"],
            "ossa.status": execution["status"],
            "ossa.retry_count": execution["retry_count"],
        },
        error=(execution["error"] or execution["status"]) if execution["status"] != "completed" else None,
    )


async def record(pool: asyncpg.Pool, outcome: Outcome) -> None:
    """Record the spans of the attempts and the execution that this change ended."""
    if not tracing.exporting():
        return
    try:
        await _attempts(pool, outcome)
        for execution in outcome.closed:
            await _execution(pool, execution)
    except (asyncpg.PostgresError, OSError) as err:  # tracing must never fail the change itself
        log.warning("could not record trace spans: %s", err)
