"""The task lease state machine in PostgreSQL, the system of record.

Every transition is one transaction, committed before the caller is answered:

    pending --claim--> assigned --renew--> running --complete--> completed
       ^                  |                   |
       +--- fail (retryable, attempts left) / lease expired, with backoff ---+
                          +--- fail (final) / cancel --> failed

A claim increments the task's fencing token. Renew, complete and fail must present the token of
the current lease; anything else is a late result: recorded in `late_results`, never applied.
`FOR UPDATE SKIP LOCKED` makes claims from several orchestrator processes safe: a task is leased
to one agent at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn, TypeAlias

import asyncpg

from ossa_runtime.errors import FailedPrecondition, NotFound

Row: TypeAlias = Any  # asyncpg.Record
LEASED = ("assigned", "running")

TASK_COLUMNS = """t.id::text AS id, t.execution_id::text AS execution_id, t.agent_id::text AS agent_id,
    t.name, t.status, t.priority, t.input, t.output, t.error, t.started_at, t.completed_at,
    t.timeout_seconds, t.capability, t.agent_type, t.attempt, t.max_retries, t.lease_seconds,
    t.fencing_token, t.lease_expires_at, t.enqueued_at, t.trace_span_id, t.capability_query,
    t.target_agent_id::text AS target_agent_id, t.routing_score, t.routing_note"""


@dataclass(frozen=True)
class Backoff:
    base: float
    cap: float

    def seconds(self, attempt: int) -> float:
        return float(min(self.cap, self.base * 2 ** max(0, attempt - 1)))


@dataclass(frozen=True)
class TaskEnd:
    """A task attempt and/or a task that ended, as the metrics count them (orchestrator_svc.telemetry)."""

    capability: str
    attempt: str | None  # how the attempt ended: completed, failed, expired, cancelled; None: never leased
    seconds: float | None  # the attempt's claim -> end
    final: str | None  # the task's final status (completed or failed); None: it went back to the queue
    task_id: str = ""
    token: int = 0  # the attempt's fencing token (it names the attempt, for its trace span)


@dataclass(frozen=True)
class Released:
    """A lease that ended without completing: the task went back to the queue or failed."""

    task_id: str
    execution_id: str
    step: str
    agent_id: str | None
    will_retry: bool
    error: str
    end: TaskEnd | None = None


class StaleLease(FailedPrecondition):
    """The fencing token is not the current lease's: the call was recorded as a late result."""


class LeaseStore:
    def __init__(self, pool: asyncpg.Pool, backoff: Backoff) -> None:
        self.pool = pool
        self.backoff = backoff

    async def late(self, task_id: str, token: int, kind: str, payload: dict[str, Any]) -> NoReturn:
        """Record a call with a stale token (in its own transaction: the caller's rolls back), then reject it."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM tasks WHERE id = $1)", task_id):
                raise NotFound(f"task {task_id} not found")
            await conn.execute(
                "INSERT INTO late_results (task_id, fencing_token, kind, payload) VALUES ($1, $2, $3, $4)",
                task_id, token, kind, payload,
            )  # fmt: skip
            await conn.execute(
                "UPDATE task_attempts SET late_results = late_results + 1 WHERE task_id = $1 AND fencing_token = $2",
                task_id, token,
            )  # fmt: skip
        raise StaleLease(
            f"task {task_id}: fencing token {token} is not the current lease (it expired, was reassigned or "
            "cancelled); the call was recorded as a late result and ignored"
        )

    async def claim(self, agent_id: str, capabilities: list[str], agent_type: str, limit: int) -> list[Row]:
        """Lease up to `limit` ready tasks to the agent: highest priority first, FIFO within one."""
        if limit <= 0:
            return []
        async with self.pool.acquire() as conn, conn.transaction():
            rows: list[Row] = await conn.fetch(
                f"""WITH picked AS (
                        SELECT id FROM tasks
                         WHERE status = 'pending' AND available_at <= CURRENT_TIMESTAMP
                           AND ((target_agent_id IS NULL AND capability = ANY($2::text[])) OR target_agent_id = $1)
                           AND (agent_type IS NULL OR agent_type = $3)
                         ORDER BY priority DESC, enqueued_at, id
                         LIMIT $4 FOR UPDATE SKIP LOCKED)
                    UPDATE tasks t
                       SET status = 'assigned', agent_id = $1, attempt = t.attempt + 1,
                           fencing_token = t.fencing_token + 1, started_at = CURRENT_TIMESTAMP,
                           lease_expires_at = CURRENT_TIMESTAMP + make_interval(secs => t.lease_seconds),
                           trace_span_id = substr(md5(random()::text || t.id::text), 1, 16)
                      FROM picked, executions e WHERE t.id = picked.id AND e.id = t.execution_id
                 RETURNING {TASK_COLUMNS}, e.trace_id""",
                agent_id, capabilities, agent_type, limit,
            )  # fmt: skip
            if not rows:
                return []
            await conn.executemany(
                """INSERT INTO task_attempts (task_id, attempt, agent_id, fencing_token, trace_span_id)
                   VALUES ($1, $2, $3, $4, $5)""",
                [(r["id"], r["attempt"], agent_id, r["fencing_token"], r["trace_span_id"]) for r in rows],
            )
            await conn.execute(
                """UPDATE executions SET status = 'running', updated_at = CURRENT_TIMESTAMP
                    WHERE id = ANY($1::uuid[]) AND status = 'pending'""",
                list({r["execution_id"] for r in rows}),
            )
        return sorted(rows, key=lambda r: (-r["priority"], r["enqueued_at"], r["id"]))

    async def free_slots(self, agent_id: str, slots: int, quarantine: float) -> int:
        """Slots minus the leases the agent holds; 0 while it is in quarantine for a lease it let expire
        (a hung agent whose stream is still open must not be handed the same work again)."""
        row = await self.pool.fetchrow(
            """SELECT (SELECT count(*) FROM tasks WHERE agent_id = $1 AND status IN ('assigned', 'running')) AS held,
                      EXISTS (SELECT 1 FROM task_attempts WHERE agent_id = $1 AND outcome = 'expired'
                                 AND finished_at > CURRENT_TIMESTAMP - make_interval(secs => $2)) AS quarantined""",
            agent_id, quarantine,
        )  # fmt: skip
        return 0 if row["quarantined"] else max(0, slots - row["held"])

    async def renew(self, task_id: str, token: int) -> datetime:
        """Extend the lease by lease_seconds, never past the attempt's timeout."""
        async with self.pool.acquire() as conn, conn.transaction():
            expires: datetime | None = await conn.fetchval(
                """UPDATE tasks SET status = 'running',
                          lease_expires_at = LEAST(CURRENT_TIMESTAMP + make_interval(secs => lease_seconds),
                                                   started_at + make_interval(secs => timeout_seconds))
                    WHERE id = $1 AND fencing_token = $2 AND status IN ('assigned', 'running')
                      AND lease_expires_at > CURRENT_TIMESTAMP
                RETURNING lease_expires_at""",
                task_id, token,
            )  # fmt: skip
        if expires is None:
            await self.late(task_id, token, "renew", {})
        return expires

    async def finish(self, conn: asyncpg.Connection, task_id: str, token: int, output: dict[str, Any]) -> Row:
        """Mark the leased task completed inside the caller's transaction; returns the task row."""
        row: Row | None = await conn.fetchrow(
            f"""UPDATE tasks t SET status = 'completed', output = $3, completed_at = CURRENT_TIMESTAMP,
                       lease_expires_at = NULL, error = NULL
                 WHERE id = $1 AND fencing_token = $2 AND status IN ('assigned', 'running')
             RETURNING {TASK_COLUMNS}""",
            task_id, token, output,
        )  # fmt: skip
        if row is None:
            await self.late(task_id, token, "complete", {"output": output})
        await conn.execute(
            """UPDATE task_attempts SET outcome = 'completed', finished_at = CURRENT_TIMESTAMP
                WHERE task_id = $1 AND fencing_token = $2""",
            task_id, token,
        )  # fmt: skip
        return row

    async def release(
        self, conn: asyncpg.Connection, task_id: str, token: int | None, error: str, retryable: bool, outcome: str
    ) -> Released | None:
        """End a lease without output: back to the queue with backoff while attempts remain, else failed.

        `token` None releases whatever lease the task holds (expiry sweep). Returns None when the
        lease is not current (the caller decides whether that is a late result).
        """
        row: Row | None = await conn.fetchrow(
            """SELECT id::text AS id, execution_id::text AS execution_id, name, agent_id::text AS agent_id,
                      attempt, max_retries, fencing_token, capability,
                      EXTRACT(EPOCH FROM CURRENT_TIMESTAMP - started_at)::float8 AS seconds
                 FROM tasks WHERE id = $1 AND status IN ('assigned', 'running')
                  AND ($2::bigint IS NULL OR fencing_token = $2) FOR UPDATE""",
            task_id, token,
        )  # fmt: skip
        if row is None:
            return None
        retry = retryable and row["attempt"] <= row["max_retries"]
        if retry:
            await conn.execute(
                """UPDATE tasks SET status = 'pending', agent_id = NULL, lease_expires_at = NULL, error = $2,
                          available_at = CURRENT_TIMESTAMP + make_interval(secs => $3),
                          -- a routed task is routed again: the best agent may now be another one
                          target_agent_id = CASE WHEN capability_query IS NULL THEN target_agent_id END
                    WHERE id = $1""",
                task_id, error, self.backoff.seconds(row["attempt"]),
            )  # fmt: skip
            await conn.execute("UPDATE executions SET retry_count = retry_count + 1 WHERE id = $1", row["execution_id"])
        else:
            await conn.execute(
                """UPDATE tasks SET status = 'failed', lease_expires_at = NULL, error = $2,
                          completed_at = CURRENT_TIMESTAMP WHERE id = $1""",
                task_id, error,
            )  # fmt: skip
        await conn.execute(
            """UPDATE task_attempts SET outcome = $3, error = $4, finished_at = CURRENT_TIMESTAMP
                WHERE task_id = $1 AND fencing_token = $2""",
            task_id, row["fencing_token"], outcome, error,
        )  # fmt: skip
        end = TaskEnd(
            row["capability"], outcome, row["seconds"], None if retry else "failed", task_id, row["fencing_token"]
        )
        return Released(task_id, row["execution_id"], row["name"], row["agent_id"], retry, error, end)

    async def expired(self, limit: int = 100) -> list[str]:
        rows = await self.pool.fetch(
            """SELECT id::text AS id FROM tasks
                WHERE status IN ('assigned', 'running') AND lease_expires_at < CURRENT_TIMESTAMP
                ORDER BY lease_expires_at LIMIT $1""",
            limit,
        )
        return [r["id"] for r in rows]
