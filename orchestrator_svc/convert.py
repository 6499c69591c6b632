"""PostgreSQL rows → protobuf messages (Workflow is shared with search: ossa_runtime.messages)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_runtime import tracing
from ossa_runtime.messages import set_times, struct
from ossa_runtime.messages import timestamp as timestamp
from ossa_runtime.messages import workflow_message as workflow

BUDGET_FIELDS = ("max_tasks", "max_seconds", "max_cost")


def execution(row: Any) -> pb.Execution:
    out = pb.Execution(
        id=row["id"],
        workflow_id=row["workflow_id"],
        status=row["status"],
        context=struct(row["context"]),
        results=struct(row["results"]),
        error=row["error"] or "",
        retry_count=row["retry_count"] or 0,
        priority=row["priority"] or 0,
        trace_id=row.get("trace_id") or "",
        spent_cost=row.get("spent_cost") or 0.0,
    )
    budget = row.get("budget")
    if budget:
        out.budget.CopyFrom(pb.Budget(**{k: v for k, v in budget.items() if k in BUDGET_FIELDS}))
    set_times(out, row, "started_at", "completed_at")
    return out


def task(row: Any, attempts: Sequence[Any] = ()) -> pb.Task:
    out = pb.Task(
        id=row["id"],
        execution_id=row["execution_id"],
        agent_id=row["agent_id"] or "",
        name=row["name"],
        status=row["status"],
        priority=row["priority"],
        input=struct(row["input"]),
        output=struct(row["output"]),
        error=row["error"] or "",
        timeout_seconds=row["timeout_seconds"],
        capability=row["capability"],
        agent_type=row["agent_type"] or "",
        attempt=row["attempt"],
        max_retries=row["max_retries"],
        lease_seconds=row["lease_seconds"],
        capability_query=row["capability_query"] or "",
        routed_agent_id=row["target_agent_id"] or "",
        routing_score=row["routing_score"] or 0.0,
        routing_note=row["routing_note"] or "",
    )
    set_times(out, row, "started_at", "completed_at", "lease_expires_at")
    for a in attempts:
        attempt = out.attempts.add(
            attempt=a["attempt"],
            agent_id=a["agent_id"] or "",
            fencing_token=a["fencing_token"],
            outcome=a["outcome"],
            error=a["error"] or "",
            late_results=a["late_results"],
        )
        set_times(attempt, a, "started_at", "finished_at")
    return out


def assignment(row: Any) -> pb.Assignment:
    out = pb.Assignment(
        task_id=row["id"],
        execution_id=row["execution_id"],
        step_id=row["name"],
        capability=row["capability"],
        input=struct(row["input"]),
        fencing_token=row["fencing_token"],
        lease_seconds=row["lease_seconds"],
        timeout_seconds=row["timeout_seconds"],
        attempt=row["attempt"],
        traceparent=tracing.traceparent(row.get("trace_id") or "", row.get("trace_span_id") or ""),
        capability_query=row["capability_query"] or "",
    )
    set_times(out, row, "lease_expires_at")
    return out


__all__ = ["assignment", "execution", "struct", "task", "timestamp", "workflow"]
