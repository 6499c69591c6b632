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
from typing import Any, TypeAlias

import asyncpg

from orchestrator_svc.outcome import Released, TaskEnd
from ossa_runtime.errors import FailedPrecondition, NotFound, PermissionDenied

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


class StaleLease(FailedPrecondition):
    """The fencing token is not the current lease's: the call was recorded as a late result."""

    @classmethod
    def of(cls, task_id: str, token: int) -> StaleLease:
        return cls(
            f"task {task_id}: fencing token {token} is not the current lease (it expired, was reassigned or "
            "cancelled); the call was recorded as a late result and ignored"
        )


@dataclass(frozen=True)
class Report:
    """A renewal or failure about one lease; `agent_id` set when an agent token may act only as itself."""

    task_id: str
    token: int
    agent_id: str | None = None


# Why a call matched no current lease: the task, and who held the presented token (else the task).
_WHY = """
SELECT i.id::text AS id, i.token, t.status, t.fencing_token, COALESCE(a.agent_id, t.agent_id)::text AS holder
  FROM unnest($1::uuid[], $2::bigint[]) AS i(id, token)
  LEFT JOIN tasks t ON t.id = i.id
  LEFT JOIN task_attempts a ON a.task_id = i.id AND a.fencing_token = i.token
"""


class LateResults:
    """Calls with a stale fencing token: recorded on their attempt, never applied."""

    async def record(self, conn: asyncpg.Connection, kind: str, items: list[tuple[str, int, dict[str, Any]]]) -> None:
        await conn.execute(
            """WITH i AS (SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::jsonb[]) AS i(id, token, payload)),
                    ins AS (INSERT INTO late_results (task_id, fencing_token, kind, payload)
                            SELECT i.id, i.token, $4, i.payload FROM i JOIN tasks t ON t.id = i.id)
               UPDATE task_attempts a SET late_results = a.late_results + 1
                 FROM i WHERE a.task_id = i.id AND a.fencing_token = i.token""",
            [i[0] for i in items], [i[1] for i in items], [i[2] for i in items], kind,
        )  # fmt: skip

    async def refuse(
        self, conn: asyncpg.Connection, kind: str, items: list[tuple[Report, dict[str, Any]]]
    ) -> list[BaseException]:
        """The error for each call that matched no current lease; the stale ones are recorded."""
        rows = await conn.fetch(_WHY, [r.task_id for r, _ in items], [r.token for r, _ in items])
        why = {(r["id"], r["token"]): r for r in rows}
        out: list[BaseException] = []
        stale = []
        for report, payload in items:
            row = why[(report.task_id, report.token)]
            if row["status"] is None:
                out.append(NotFound(f"task {report.task_id} not found"))
            elif report.agent_id is not None and row["holder"] not in (None, report.agent_id):
                out.append(PermissionDenied(f"task {report.task_id} is leased to agent {row['holder']}, "
                                            f"not to agent {report.agent_id}"))  # fmt: skip
            else:
                stale.append((report.task_id, report.token, payload))
                out.append(StaleLease.of(report.task_id, report.token))
        if stale:
            await self.record(conn, kind, stale)
        return out


class LeaseStore:
    def __init__(self, pool: asyncpg.Pool, backoff: Backoff) -> None:
        self.pool = pool
        self.backoff = backoff
        self.late = LateResults()

    async def renew(self, reports: list[Report]) -> list[tuple[datetime, str] | BaseException]:
        """Extend each lease by its lease_seconds, never past the attempt's timeout; one statement.
        Per report: (the new expiry, the holder) or the error."""
        rows = await self.pool.fetch(
            """WITH i AS (SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::uuid[]) AS i(id, token, agent))
               UPDATE tasks t SET status = 'running',
                      lease_expires_at = LEAST(CURRENT_TIMESTAMP + make_interval(secs => t.lease_seconds),
                                               t.started_at + make_interval(secs => t.timeout_seconds))
                 FROM i
                WHERE t.id = i.id AND t.fencing_token = i.token AND t.status IN ('assigned', 'running')
                  AND t.lease_expires_at > CURRENT_TIMESTAMP AND (i.agent IS NULL OR t.agent_id = i.agent)
            RETURNING t.id::text AS id, t.fencing_token, t.lease_expires_at, t.agent_id::text AS agent_id""",
            [r.task_id for r in reports], [r.token for r in reports], [r.agent_id for r in reports],
        )  # fmt: skip
        renewed = {(r["id"], r["fencing_token"]): (r["lease_expires_at"], r["agent_id"]) for r in rows}
        misses = [r for r in reports if (r.task_id, r.token) not in renewed]
        refused: dict[tuple[str, int], BaseException] = {}
        if misses:
            async with self.pool.acquire() as conn, conn.transaction():
                errors = await self.late.refuse(conn, "renew", [(r, {}) for r in misses])
            refused = {(r.task_id, r.token): e for r, e in zip(misses, errors, strict=True)}
        return [renewed.get((r.task_id, r.token)) or refused[(r.task_id, r.token)] for r in reports]

    async def release(
        self,
        conn: asyncpg.Connection,
        task_id: str,
        token: int | None,
        error: str,
        retryable: bool,
        outcome: str,
        agent_id: str | None = None,
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
                  AND ($2::bigint IS NULL OR fencing_token = $2) AND ($3::uuid IS NULL OR agent_id = $3)
                  FOR UPDATE""",
            task_id, token, agent_id,
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
        end = TaskEnd(row["capability"], outcome, row["seconds"], None if retry else "failed", task_id,
                      row["fencing_token"], row["agent_id"] or "")  # fmt: skip
        return Released(task_id, row["execution_id"], row["name"], row["agent_id"], retry, error, end)

    async def undeliver(self, leases: list[tuple[str, int]]) -> list[Row]:
        """Leases pushed to a stream that closed before sending them: back in the queue as if never
        leased (their attempt is forgotten; the fencing token stays spent, so nothing sent under it
        can land). Returns the tasks queued again."""
        rows: list[Row] = await self.pool.fetch(
            """WITH i AS (SELECT * FROM unnest($1::uuid[], $2::bigint[]) AS i(id, token)),
                    back AS (UPDATE tasks t SET status = 'pending', agent_id = NULL, lease_expires_at = NULL,
                                    started_at = NULL, attempt = t.attempt - 1, trace_span_id = NULL
                               FROM i WHERE t.id = i.id AND t.fencing_token = i.token AND t.status = 'assigned'
                             RETURNING t.id, t.fencing_token, t.execution_id, t.name, t.status, t.priority,
                                       t.capability, t.agent_type, t.enqueued_at, t.capability_query,
                                       t.target_agent_id),
                    gone AS (DELETE FROM task_attempts a USING back b
                              WHERE a.task_id = b.id AND a.fencing_token = b.fencing_token)
               SELECT id::text AS id, execution_id::text AS execution_id, name, status, priority, capability,
                      agent_type, enqueued_at, capability_query, target_agent_id::text AS target_agent_id
                 FROM back""",
            [lease[0] for lease in leases], [lease[1] for lease in leases],
        )  # fmt: skip
        return rows

    async def expired(self, limit: int = 100) -> list[str]:
        rows = await self.pool.fetch(
            """SELECT id::text AS id FROM tasks
                WHERE status IN ('assigned', 'running') AND lease_expires_at < CURRENT_TIMESTAMP
                ORDER BY lease_expires_at LIMIT $1""",
            limit,
        )
        return [r["id"] for r in rows]
