"""Executions: start a run, advance it as tasks complete, fail it, cancel it.

Tasks are created when their step becomes ready (all dependencies completed), with the input
`{"params": step.input, "context": execution.context, "upstream": {dep: output}}`. The execution
row is locked (`FOR UPDATE`) while it advances, so concurrent completions of sibling steps create
each downstream task exactly once, also across orchestrator processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

import asyncpg

from orchestrator_svc.definition import Definition, Step
from orchestrator_svc.leases import TASK_COLUMNS, LeaseStore, Released, TaskEnd
from orchestrator_svc.workflows import WorkflowStore
from ossa_runtime.errors import FailedPrecondition, NotFound
from ossa_runtime.tracing import new_span_id

Row: TypeAlias = Any  # asyncpg.Record
EXECUTION_COLUMNS = """id::text AS id, workflow_id::text AS workflow_id, status, started_at, completed_at,
    context, results, error, retry_count, priority, trace_id, trace_parent_span_id, trace_span_id"""
FINAL = ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class Revoked:
    """A lease taken away from an agent (its task was cancelled or its execution failed)."""

    task_id: str
    agent_id: str
    fencing_token: int
    reason: str


@dataclass
class Outcome:
    """What a state change did, for the Redis mirror, the agents' streams and the metrics."""

    execution: Row | None = None
    created: list[Row] = field(default_factory=list)
    revoked: list[Revoked] = field(default_factory=list)
    released: Released | None = None
    ended: list[TaskEnd] = field(default_factory=list)
    closed: bool = False  # this change moved the execution to a final status


class ExecutionEngine:
    def __init__(self, pool: asyncpg.Pool, workflows: WorkflowStore, leases: LeaseStore) -> None:
        self.pool = pool
        self.workflows = workflows
        self.leases = leases

    async def _definition(self, conn: asyncpg.Connection, workflow_id: str) -> Definition:
        cached = self.workflows.cached_definition(workflow_id)
        if cached is not None:
            return cached
        raw = await conn.fetchval("SELECT definition FROM workflows WHERE id = $1", workflow_id)
        return self.workflows.definition(workflow_id, raw)

    async def _create_tasks(
        self, conn: asyncpg.Connection, execution: Row, steps: list[Step], upstream: dict[str, Any]
    ) -> list[Row]:
        created = []
        for step in steps:
            task_input = {
                "params": step.input,
                "context": execution["context"] or {},
                "upstream": {dep: upstream[dep] for dep in step.depends_on},
            }
            row = await conn.fetchrow(
                f"""INSERT INTO tasks AS t (execution_id, name, status, priority, input, timeout_seconds,
                                           capability, agent_type, max_retries, lease_seconds,
                                           capability_query, routing_min_score)
                    VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, $9, $10, $11)
                    ON CONFLICT (execution_id, name) DO NOTHING
                    RETURNING {TASK_COLUMNS}""",
                execution["id"], step.id, execution["priority"] or step.priority, task_input,
                step.timeout_seconds, step.capability, step.agent_type, step.max_retries, step.lease_seconds,
                step.capability_query or None, step.min_score,
            )  # fmt: skip
            if row is not None:
                created.append(row)
        return created

    async def start(
        self,
        workflow: Row,
        context: dict[str, Any],
        priority: int | None,
        idempotency_key: str | None,
        trace: tuple[str, str] = ("", ""),
    ) -> tuple[Row, list[Row], bool]:
        """Create the execution and its root tasks; returns (execution, tasks, created_now).

        `trace`: (trace_id, span_id) of the call that started it, the parent of the execution's span.
        """
        trace_id, parent_span_id = trace
        if workflow["status"] != "published":
            raise FailedPrecondition(f"workflow {workflow['id']} is {workflow['status']}: only published workflows run")
        definition = self.workflows.definition(workflow["id"], workflow["definition"])
        async with self.pool.acquire() as conn, conn.transaction():
            execution: Row | None = await conn.fetchrow(
                f"""INSERT INTO executions (workflow_id, status, context, priority, idempotency_key,
                                            trace_id, trace_parent_span_id, trace_span_id)
                    VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7)
                    ON CONFLICT (idempotency_key) DO NOTHING RETURNING {EXECUTION_COLUMNS}""",
                workflow["id"], context, priority, idempotency_key, trace_id or None, parent_span_id or None,
                new_span_id() if trace_id else None,
            )  # fmt: skip
            if execution is None:  # the key was used before: the same execution, never a second one
                existing: Row = await conn.fetchrow(
                    f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE idempotency_key = $1", idempotency_key
                )
                return existing, [], False
            tasks = await self._create_tasks(conn, execution, definition.roots(), {})
        return execution, tasks, True

    async def get(self, execution_id: str) -> Row:
        row: Row | None = await self.pool.fetchrow(
            f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1", execution_id
        )
        if row is None:
            raise NotFound(f"execution {execution_id} not found")
        return row

    async def _lock(self, conn: asyncpg.Connection, execution_id: str) -> Row:
        row: Row | None = await conn.fetchrow(
            f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1 FOR UPDATE", execution_id
        )
        if row is None:
            raise NotFound(f"execution {execution_id} not found")
        return row

    async def _stop_tasks(
        self, conn: asyncpg.Connection, execution_id: str, reason: str
    ) -> tuple[list[Revoked], list[TaskEnd]]:
        """Fail every unfinished task of the execution; returns the leases taken from agents and the ends."""
        rows = await conn.fetch(
            """UPDATE tasks SET status = 'failed', error = $2, completed_at = CURRENT_TIMESTAMP,
                      lease_expires_at = NULL
                WHERE execution_id = $1 AND status IN ('pending', 'assigned', 'running')
            RETURNING id::text AS id, agent_id::text AS agent_id, fencing_token, capability,
                      EXTRACT(EPOCH FROM CURRENT_TIMESTAMP - started_at)::float8 AS seconds""",
            execution_id, reason,
        )  # fmt: skip
        revoked = [Revoked(r["id"], r["agent_id"], r["fencing_token"], reason) for r in rows if r["agent_id"]]
        ended = [
            TaskEnd(r["capability"], "cancelled", r["seconds"], "failed", r["id"], r["fencing_token"])
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

    async def _fail_execution(self, conn: asyncpg.Connection, execution_id: str, error: str) -> Outcome:
        revoked, ended = await self._stop_tasks(conn, execution_id, f"execution failed: {error}")
        execution = await conn.fetchrow(
            f"""UPDATE executions SET status = 'failed', error = $2, completed_at = CURRENT_TIMESTAMP,
                       updated_at = CURRENT_TIMESTAMP
                 WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')
             RETURNING {EXECUTION_COLUMNS}""",
            execution_id, error,
        )  # fmt: skip
        return Outcome(execution=execution, revoked=revoked, ended=ended, closed=execution is not None)

    async def complete(self, task_id: str, token: int, output: dict[str, Any]) -> Outcome:
        async with self.pool.acquire() as conn, conn.transaction():
            task = await self.leases.finish(conn, task_id, token, output)
            seconds = (task["completed_at"] - task["started_at"]).total_seconds()
            ended = [TaskEnd(task["capability"], "completed", seconds, "completed", task_id, token)]
            execution = await self._lock(conn, task["execution_id"])
            if execution["status"] in FINAL:
                return Outcome(execution=execution, ended=ended)
            definition = await self._definition(conn, execution["workflow_id"])
            done = {
                r["name"]: r["output"]
                for r in await conn.fetch(
                    "SELECT name, output FROM tasks WHERE execution_id = $1 AND status = 'completed'",
                    execution["id"],
                )
            }
            ready = [s for s in definition.dependents(task["name"]) if all(d in done for d in s.depends_on)]
            created = await self._create_tasks(conn, execution, ready, done)
            finished = len(done) == len(definition.steps)
            execution = await conn.fetchrow(
                f"""UPDATE executions SET results = results || jsonb_build_object($2::text, $3::jsonb),
                           status = CASE WHEN $4 THEN 'completed' ELSE 'running' END,
                           completed_at = CASE WHEN $4 THEN CURRENT_TIMESTAMP ELSE completed_at END,
                           updated_at = CURRENT_TIMESTAMP
                     WHERE id = $1 RETURNING {EXECUTION_COLUMNS}""",
                execution["id"], task["name"], output, finished,
            )  # fmt: skip
        return Outcome(execution=execution, created=created, ended=ended, closed=finished)

    async def fail(self, task_id: str, token: int, error: str, retryable: bool) -> Outcome:
        async with self.pool.acquire() as conn, conn.transaction():
            released = await self.leases.release(conn, task_id, token, error, retryable, "failed")
            if released is not None:
                return await self._after_release(conn, released)
        await self.leases.late(task_id, token, "fail", {"error": error})

    async def expire(self, task_id: str) -> Outcome | None:
        """The task's lease ran out (agent dead, hung or over its timeout): retry or fail it."""
        async with self.pool.acquire() as conn, conn.transaction():
            agent = await conn.fetchval(
                """SELECT agent_id::text FROM tasks WHERE id = $1 AND status IN ('assigned', 'running')
                      AND lease_expires_at < CURRENT_TIMESTAMP""",
                task_id,
            )
            if agent is None:
                return None  # renewed or finished meanwhile
            error = f"lease expired: agent {agent} stopped renewing or exceeded the step's timeout"
            released = await self.leases.release(conn, task_id, None, error, True, "expired")
            if released is None:
                return None
            return await self._after_release(conn, released)

    async def _after_release(self, conn: asyncpg.Connection, released: Released) -> Outcome:
        ended = [released.end] if released.end is not None else []
        if released.will_retry:
            return Outcome(released=released, ended=ended)
        outcome = await self._fail_execution(conn, released.execution_id, f"step {released.step}: {released.error}")
        outcome.released = released
        outcome.ended[:0] = ended
        return outcome

    async def cancel(self, execution_id: str) -> Outcome:
        async with self.pool.acquire() as conn, conn.transaction():
            execution = await self._lock(conn, execution_id)
            if execution["status"] == "cancelled":
                return Outcome(execution=execution)
            if execution["status"] in FINAL:
                raise FailedPrecondition(f"execution {execution_id} is already {execution['status']}")
            revoked, ended = await self._stop_tasks(conn, execution_id, "execution cancelled")
            execution = await conn.fetchrow(
                f"""UPDATE executions SET status = 'cancelled', completed_at = CURRENT_TIMESTAMP,
                           updated_at = CURRENT_TIMESTAMP WHERE id = $1 RETURNING {EXECUTION_COLUMNS}""",
                execution_id,
            )
        return Outcome(execution=execution, revoked=revoked, ended=ended, closed=True)

    async def query(self, workflow_id: str | None, status: str | None, limit: int, offset: int) -> list[Row]:
        rows: list[Row] = await self.pool.fetch(
            f"""SELECT {EXECUTION_COLUMNS} FROM executions
                 WHERE ($1::uuid IS NULL OR workflow_id = $1) AND ($2::text IS NULL OR status = $2)
                 ORDER BY started_at DESC, id LIMIT $3 OFFSET $4""",
            workflow_id, status, limit, offset,
        )  # fmt: skip
        return rows

    async def tasks(self, execution_id: str) -> list[Row]:
        await self.get(execution_id)
        rows: list[Row] = await self.pool.fetch(
            f"SELECT {TASK_COLUMNS} FROM tasks t WHERE execution_id = $1 ORDER BY created_at, id", execution_id
        )
        return rows

    async def task(self, task_id: str) -> tuple[Row, list[Row]]:
        row: Row | None = await self.pool.fetchrow(f"SELECT {TASK_COLUMNS} FROM tasks t WHERE id = $1", task_id)
        if row is None:
            raise NotFound(f"task {task_id} not found")
        attempts = await self.pool.fetch(
            """SELECT attempt, agent_id::text AS agent_id, fencing_token, outcome, error, started_at,
                      finished_at, late_results
                 FROM task_attempts WHERE task_id = $1 ORDER BY attempt""",
            task_id,
        )
        return row, list(attempts)
