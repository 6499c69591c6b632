"""Server-side cost counters for one benchmark row, read before and after it, and the executions'
own record: everything is read from the servers, nothing is counted in the load generator.

- PostgreSQL statements: `pg_stat_statements` (sum of `calls` in the platform's database), when the
  server preloads it (`ossa up`'s embedded PostgreSQL does when its wheel ships the library);
  statements of every client (all services), except this observer's own (marked `ossa-bench`).
- PostgreSQL transactions: `pg_stat_database.xact_commit + xact_rollback` of the database, minus
  the observer's own queries (each one its own transaction). Backends flush these counters when
  they go idle (at most once a second): read them a little after the load stops.
- Round trips: the orchestrator's `ossa_db_query_duration_seconds_count{service="orchestrator"}`
  on its /metrics (summed over its processes): one per asyncpg call (BEGIN and COMMIT count one
  each, an `executemany` one), so round trips of the orchestrator only.
- Redis commands: INFO `total_commands_processed` (pipelined commands count one each).
- PostgreSQL planning and execution time per statement (`total_plan_time`, `total_exec_time`): in a
  platform started for the benchmark, the observer turns `pg_stat_statements.track_planning` on.

The observer's own load while a row runs: one indexed count query about every 0.25 s.
"""

from __future__ import annotations

import asyncio
import http.client
import re
from dataclasses import dataclass, field
from typing import Any

import asyncpg

MARK = "ossa-bench"  # a comment in every observer query, so pg_stat_statements can leave them out
QUERY_COUNT = re.compile(r'^ossa_db_query_duration_seconds_count\{[^}]*service="orchestrator"[^}]*\}\s+(\S+)', re.M)


@dataclass(frozen=True)
class Statement:
    """pg_stat_statements' totals of one statement (summed over users)."""

    calls: float
    plan_ms: float  # 0 unless track_planning is on
    exec_ms: float
    query: str


@dataclass(frozen=True)
class Top:
    """One statement's share of a row: calls per task, and ms planning / executing per call."""

    per_task: float
    plan_ms: float
    exec_ms: float
    query: str


@dataclass
class Counters:
    transactions: float
    statements: dict[int, Statement] | None  # by queryid; None: no pg_stat_statements
    round_trips: float | None  # the orchestrator's asyncpg calls; None: /metrics not readable
    redis_commands: float | None
    observer_queries: int


@dataclass
class Cost:
    """What a row cost the servers, per completed task."""

    tasks: int
    statements: float | None
    transactions: float
    round_trips: float | None
    redis_commands: float | None
    orchestrator_cpu_ms: float | None
    plan_ms: float | None = None  # PostgreSQL's planning time per task (track_planning), every statement
    exec_ms: float | None = None  # and its execution time
    top: list[Top] = field(default_factory=list)  # most calls per task first

    @staticmethod
    def between(before: Counters, after: Counters, tasks: int, cpu_seconds: float | None) -> Cost:
        per = 1.0 / tasks if tasks else float("nan")
        own = after.observer_queries - before.observer_queries
        top: list[Top] = []
        statements = plan_ms = exec_ms = None
        if before.statements is not None and after.statements is not None:
            none = Statement(0.0, 0.0, 0.0, "")
            moved = {q: (s, before.statements.get(q, none)) for q, s in after.statements.items()}
            deltas = [(s.calls - b.calls, s.plan_ms - b.plan_ms, s.exec_ms - b.exec_ms, s.query)
                      for s, b in moved.values()]  # fmt: skip
            statements = sum(d[0] for d in deltas) * per
            plan_ms, exec_ms = sum(d[1] for d in deltas) * per, sum(d[2] for d in deltas) * per
            top = sorted((Top(c * per, p / c, e / c, q) for c, p, e, q in deltas if c > 0),
                         key=lambda t: t.per_task, reverse=True)  # fmt: skip
        return Cost(
            tasks=tasks,
            statements=statements,
            transactions=(after.transactions - before.transactions - own) * per,
            round_trips=_delta(before.round_trips, after.round_trips, per),
            redis_commands=_delta(before.redis_commands, after.redis_commands, per, own=1),
            orchestrator_cpu_ms=cpu_seconds * 1000 * per if cpu_seconds is not None else None,
            plan_ms=plan_ms,
            exec_ms=exec_ms,
            top=top,
        )


def _delta(before: float | None, after: float | None, per: float, own: int = 0) -> float | None:
    if before is None or after is None:
        return None
    return (after - before - own) * per


@dataclass
class Execution:
    id: str
    status: str
    started_at: float  # epoch seconds, the server's clock (the start transaction's time)
    completed_at: float | None


class PgObserver:
    """One PostgreSQL connection (plus /metrics and Redis reads) watching the platform."""

    def __init__(self, conn: Any, metrics: str, redis_url: str, statements: bool) -> None:
        self.conn, self.metrics, self.redis_url = conn, metrics, redis_url
        self.has_statements = statements
        self.queries = 0  # run by this observer, each its own transaction
        self.redis: Any = None

    @classmethod
    async def connect(cls, dsn: str, metrics: str, redis_url: str, create_extension: bool) -> PgObserver:
        """`metrics` is the orchestrator's metrics HOST:PORT; `create_extension` allows
        CREATE EXTENSION pg_stat_statements (in a platform started for the benchmark)."""
        conn = await asyncpg.connect(dsn, timeout=10)
        preload = await conn.fetchval(f"SELECT /* {MARK} */ current_setting('shared_preload_libraries')")
        installed = await conn.fetchval(
            f"SELECT /* {MARK} */ count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"
        )
        if "pg_stat_statements" in preload and not installed and create_extension:
            await conn.execute(f"CREATE /* {MARK} */ EXTENSION IF NOT EXISTS pg_stat_statements")
            installed = 1
        if "pg_stat_statements" in preload and create_extension:  # planning time too (new sessions see it at once)
            await conn.execute(f"ALTER /* {MARK} */ SYSTEM SET pg_stat_statements.track_planning = on")
            await conn.execute(f"SELECT /* {MARK} */ pg_reload_conf()")
        return cls(conn, metrics, redis_url, bool(installed) and "pg_stat_statements" in preload)

    async def _fetch(self, query: str, *args: Any) -> list[Any]:
        """A SELECT, marked inside the statement (pg_stat_statements drops leading comments)."""
        self.queries += 1
        rows: list[Any] = await self.conn.fetch(f"SELECT /* {MARK} */ {query.removeprefix('SELECT ')}", *args)
        return rows

    async def counters(self) -> Counters:
        xacts = await self._fetch(
            "SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()"
        )
        statements = None
        if self.has_statements:
            rows = await self._fetch(
                "SELECT coalesce(queryid, 0) AS queryid, sum(calls) AS calls, sum(total_plan_time) AS plan_ms, "
                "sum(total_exec_time) AS exec_ms, "
                "left(regexp_replace(min(query), '\\s+', ' ', 'g'), 110) AS query FROM pg_stat_statements "
                "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                f"AND query NOT LIKE '%{MARK}%' GROUP BY 1"
            )
            statements = {
                int(r["queryid"]): Statement(float(r["calls"]), float(r["plan_ms"]), float(r["exec_ms"]), r["query"])
                for r in rows
            }
        round_trips, redis = await asyncio.gather(self._round_trips(), self._redis_commands())
        return Counters(float(xacts[0]["n"]), statements, round_trips, redis, self.queries)

    async def _round_trips(self) -> float | None:
        try:
            text = await asyncio.to_thread(_get, self.metrics, "/metrics")
        except OSError:
            return None
        values = [float(v) for v in QUERY_COUNT.findall(text)]
        return sum(values) if values else None

    async def _redis_commands(self) -> float | None:
        """One INFO on a connection kept open (so each read adds just that one command)."""
        if not self.redis_url:
            return None
        import redis.asyncio as aioredis

        if self.redis is None:
            self.redis = aioredis.Redis.from_url(self.redis_url)
        try:
            info = await self.redis.info("stats")
            return float(info["total_commands_processed"])
        except (OSError, aioredis.RedisError):
            return None

    async def progress(self, workflow_id: str) -> tuple[int, int]:
        """(completed, failed or cancelled) executions of the workflow."""
        rows = await self._fetch(
            "SELECT count(*) FILTER (WHERE status = 'completed') AS ok, "
            "count(*) FILTER (WHERE status IN ('failed', 'cancelled')) AS bad FROM executions WHERE workflow_id = $1",
            workflow_id,
        )
        return int(rows[0]["ok"]), int(rows[0]["bad"])

    async def wait(self, workflow_id: str, expected: int, timeout: float, every: float = 0.25) -> tuple[int, int]:
        """Poll `progress` until `expected` executions ended, nothing moved for 15 s, or `timeout`."""
        loop = asyncio.get_running_loop()
        deadline, seen, moved = loop.time() + timeout, (-1, -1), loop.time()
        while True:
            ok, bad = await self.progress(workflow_id)
            if ok + bad >= expected or loop.time() > deadline or loop.time() - moved > 15.0:
                return ok, bad
            if (ok, bad) != seen:
                seen, moved = (ok, bad), loop.time()
            await asyncio.sleep(every)

    async def executions(self, workflow_id: str) -> list[Execution]:
        rows = await self._fetch(
            "SELECT id::text AS id, status, extract(epoch FROM started_at)::float8 AS started, "
            "extract(epoch FROM completed_at)::float8 AS completed FROM executions WHERE workflow_id = $1",
            workflow_id,
        )
        return [Execution(r["id"], r["status"], r["started"], r["completed"]) for r in rows]

    async def close(self) -> None:
        await self.conn.close()
        if self.redis is not None:
            await self.redis.aclose()


def _get(target: str, path: str) -> str:
    host, port = target.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode(errors="replace")
    finally:
        conn.close()
