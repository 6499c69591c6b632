"""Executions: fail a task (retry or fail the run), expire leases, cancel, and read executions.

Starting runs is orchestrator_svc/starts.py, completing tasks orchestrator_svc/completions.py
(both batched). Failures are batched too: one transaction per batch, each failure released in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from orchestrator_svc.leases import TASK_COLUMNS, LeaseStore, Report
from orchestrator_svc.outcome import Outcome, Released, Revoked, Row
from orchestrator_svc.starts import EXECUTION_COLUMNS
from orchestrator_svc.stops import fail_execution, stop_tasks
from ossa_runtime.errors import FailedPrecondition, NotFound

FINAL = ("completed", "failed", "cancelled")
__all__ = ["FINAL", "ExecutionEngine", "Failure", "Outcome", "Revoked"]


@dataclass(frozen=True)
class Failure:
    """A failure report about one lease; `agent_id` set when an agent token may act only as itself."""

    task_id: str
    token: int
    error: str
    retryable: bool
    agent_id: str | None = None


class ExecutionEngine:
    def __init__(self, pool: asyncpg.Pool, leases: LeaseStore) -> None:
        self.pool = pool
        self.leases = leases

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

    async def fail(self, items: list[Failure]) -> tuple[list[bool | BaseException], Outcome]:
        """Release a batch of leases in one transaction; per item whether the task will be retried."""
        out: list[bool | BaseException] = []
        outcome = Outcome()
        misses: list[tuple[int, Failure]] = []
        async with self.pool.acquire() as conn, conn.transaction():
            for f in items:
                released = await self.leases.release(
                    conn, f.task_id, f.token, f.error, f.retryable, "failed", f.agent_id
                )
                if released is None:
                    misses.append((len(out), f))
                    out.append(False)
                    continue
                outcome.merge(await self._after_release(conn, released))
                out.append(released.will_retry)
            if misses:
                reports = [(Report(f.task_id, f.token, f.agent_id), {"error": f.error}) for _, f in misses]
                errors = await self.leases.late.refuse(conn, "fail", reports)
                for (index, _), error in zip(misses, errors, strict=True):
                    out[index] = error
        return out, outcome

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
            return Outcome(released=[released], ended=ended)
        outcome = await fail_execution(conn, released.execution_id, f"step {released.step}: {released.error}")
        outcome.released = [released]
        outcome.ended[:0] = ended
        return outcome

    async def cancel(self, execution_id: str) -> Outcome:
        async with self.pool.acquire() as conn, conn.transaction():
            execution = await self._lock(conn, execution_id)
            if execution["status"] == "cancelled":
                return Outcome(executions=[execution])
            if execution["status"] in FINAL:
                raise FailedPrecondition(f"execution {execution_id} is already {execution['status']}")
            revoked, ended = await stop_tasks(conn, execution_id, "execution cancelled")
            execution = await conn.fetchrow(
                f"""UPDATE executions SET status = 'cancelled', completed_at = CURRENT_TIMESTAMP,
                           updated_at = CURRENT_TIMESTAMP WHERE id = $1 RETURNING {EXECUTION_COLUMNS}""",
                execution_id,
            )
        return Outcome(executions=[execution], closed=[execution], revoked=revoked, ended=ended)

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
