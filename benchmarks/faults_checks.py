"""What the fault suite checks after each scenario, read from PostgreSQL (and Redis for the mirror).

- Final states: every execution of the scenario's workflows is completed, except the `doomed` ones,
  which must be failed (INTENDED_FAILURES). One still pending/running is lost; one failed that was
  not meant to is unexpected.
- Consistency of what completed: a completed execution has one result per step, each equal to its
  task's output, and every task completed; a completed task has exactly one completed attempt, the
  one of its current fencing token. Two completed attempts of one task are a double acceptance.
- Accepted completions: the SDK logs `task <id> completed (fencing token <n>)` only after the
  orchestrator acknowledged the completion (a Receipt sent after COMMIT, or the CompleteTask reply).
  Every such line of every agent's log must be in PostgreSQL: the task completed with that token,
  its attempt of that token completed. An acknowledged completion not there was lost; two
  acknowledged tokens for one task were both accepted.
- Accepted starts: every execution whose start the load generator saw acknowledged exists.
- Leases: no task is leased to an agent whose process is gone, and no lease is more than a few
  seconds past its expiry (the sweeper returns them).
- The Redis mirror: the ids in `ossa:tasks:priority` (and `ossa:tasks:pending`) are the pending
  tasks in PostgreSQL, waiting for the orchestrator's periodic mirror check to repair a drift; and
  no `ossa:task:{id}:data` or `ossa:workflow:{id}:state` of a task or execution that is not live
  lacks an expiry (Redis would grow forever).
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from benchmarks.faults_load import INTENDED_FAILURES
from ossa_runtime import keys

ACKED = re.compile(r"task ([0-9a-f-]{36}) completed \(fencing token (\d+)\)")
FINAL = ("completed", "failed", "cancelled")
LEASE_SLACK = 5.0  # seconds a lease may stay past its expiry before the sweeper is late


@dataclass
class Findings:
    lost: list[str] = field(default_factory=list)
    double: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    leases: list[str] = field(default_factory=list)
    mirror: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # what a scenario's own checks found

    def all(self) -> list[str]:
        return self.lost + self.double + self.unexpected + self.leases + self.mirror + self.other

    def failed_checks(self) -> list[str]:
        names = ("lost", "double", "unexpected", "leases", "mirror", "other")
        return [n for n in names if getattr(self, n)]


class Db:
    """One PostgreSQL connection that reconnects (bounded) when the server was restarted under it."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: Any = None

    async def fetch(self, query: str, *args: Any, patience: float = 60.0) -> list[Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while True:
            try:
                if self.conn is None or self.conn.is_closed():
                    self.conn = await asyncpg.connect(self.dsn, timeout=5)
                rows: list[Any] = await self.conn.fetch(query, *args, timeout=30)
                return rows
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as err:
                await self._drop()
                if loop.time() > deadline or isinstance(err, asyncpg.PostgresSyntaxError):
                    raise
                await asyncio.sleep(0.5)

    async def _drop(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            try:
                await asyncio.wait_for(conn.close(), 2)
            except Exception:
                conn.terminate()

    async def close(self) -> None:
        await self._drop()


@dataclass
class Tally:
    started: int = 0
    completed: int = 0
    failed: int = 0
    late_results: int = 0  # reports refused with a stale fencing token
    expired: int = 0  # attempts whose lease ran out (their agent died, hung or lost its stream)


async def tally(db: Db, workflow_ids: list[str]) -> Tally:
    [row] = await db.fetch(
        """WITH x AS (SELECT id, status FROM executions WHERE workflow_id = ANY($1::uuid[])),
                t AS (SELECT t.id FROM tasks t JOIN x ON x.id = t.execution_id)
           SELECT (SELECT count(*) FROM x) AS started,
                  (SELECT count(*) FROM x WHERE status = 'completed') AS completed,
                  (SELECT count(*) FROM x WHERE status = 'failed') AS failed,
                  (SELECT count(*) FROM late_results l JOIN t ON t.id = l.task_id) AS late,
                  (SELECT count(*) FROM task_attempts a JOIN t ON t.id = a.task_id
                    WHERE a.outcome = 'expired') AS expired""",
        workflow_ids,
    )
    return Tally(row["started"], row["completed"], row["failed"], row["late"], row["expired"])


async def longest_stall(db: Db, workflow_ids: list[str], start: float, end: float) -> float:
    """The longest time in [start, end] (wall clock) without a task of these workflows completing."""
    rows = await db.fetch(
        """SELECT extract(epoch FROM t.completed_at)::float8 AS at FROM tasks t
             JOIN executions x ON x.id = t.execution_id
            WHERE x.workflow_id = ANY($1::uuid[]) AND t.status = 'completed'
              AND t.completed_at BETWEEN to_timestamp($2) AND to_timestamp($3) ORDER BY 1""",
        workflow_ids, start, end,
    )  # fmt: skip
    marks = [start, *(float(r["at"]) for r in rows), end]
    return max(b - a for a, b in itertools.pairwise(marks))


async def wait_final(db: Db, workflow_ids: list[str], timeout: float) -> int:
    """Poll until every execution of the workflows is final (or `timeout`); how many are not."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        [row] = await db.fetch(
            "SELECT count(*) AS n FROM executions WHERE workflow_id = ANY($1::uuid[]) AND status <> ALL($2::text[])",
            workflow_ids, list(FINAL),
        )  # fmt: skip
        if row["n"] == 0 or loop.time() > deadline:
            return int(row["n"])
        await asyncio.sleep(0.5)


async def first_completion_after(db: Db, workflow_ids: list[str], epoch: float) -> float | None:
    """Seconds from `epoch` (a wall-clock time) to the first task of these workflows completed after it."""
    [row] = await db.fetch(
        """SELECT extract(epoch FROM min(t.completed_at))::float8 AS at FROM tasks t
             JOIN executions x ON x.id = t.execution_id
            WHERE x.workflow_id = ANY($1::uuid[]) AND t.status = 'completed' AND t.completed_at > to_timestamp($2)""",
        workflow_ids, epoch,
    )  # fmt: skip
    return None if row["at"] is None else float(row["at"]) - epoch


async def check_executions(db: Db, workflows: dict[str, str], out: Findings) -> None:
    kinds = {wid: kind for kind, wid in workflows.items()}
    rows = await db.fetch(
        """SELECT id::text AS id, workflow_id::text AS wid, status, error FROM executions
            WHERE workflow_id = ANY($1::uuid[])""",
        list(kinds),
    )
    for r in rows:
        kind = kinds[r["wid"]]
        if r["status"] not in FINAL:
            out.lost.append(f"execution {r['id']} ({kind}) is still {r['status']}")
        elif kind in INTENDED_FAILURES and r["status"] != "failed":
            out.unexpected.append(f"execution {r['id']} ({kind}) is {r['status']}, meant to fail")
        elif kind not in INTENDED_FAILURES and r["status"] != "completed":
            out.unexpected.append(f"execution {r['id']} ({kind}) is {r['status']}: {r['error']}")
    bad = await db.fetch(
        """SELECT e.id::text AS id FROM executions e
            WHERE e.workflow_id = ANY($1::uuid[]) AND e.status = 'completed' AND (
                  (SELECT count(*) FROM jsonb_object_keys(COALESCE(e.results, '{}'))) <> e.step_count
               OR (SELECT count(*) FROM tasks t WHERE t.execution_id = e.id) <> e.step_count
               OR EXISTS (SELECT 1 FROM tasks t WHERE t.execution_id = e.id
                           AND (t.status <> 'completed' OR e.results -> t.name IS DISTINCT FROM t.output)))""",
        list(kinds),
    )
    out.lost += [f"execution {r['id']} completed, but its results disagree with its tasks" for r in bad]


async def check_tasks(db: Db, workflow_ids: list[str], out: Findings) -> None:
    doubles = await db.fetch(
        """SELECT a.task_id::text AS id, count(*) AS n FROM task_attempts a
             JOIN tasks t ON t.id = a.task_id JOIN executions x ON x.id = t.execution_id
            WHERE x.workflow_id = ANY($1::uuid[]) AND a.outcome = 'completed' GROUP BY a.task_id HAVING count(*) > 1""",
        workflow_ids,
    )  # fmt: skip
    out.double += [f"task {r['id']} has {r['n']} completed attempts" for r in doubles]
    orphans = await db.fetch(
        """SELECT t.id::text AS id FROM tasks t JOIN executions x ON x.id = t.execution_id
            WHERE x.workflow_id = ANY($1::uuid[]) AND t.status = 'completed'
              AND NOT EXISTS (SELECT 1 FROM task_attempts a WHERE a.task_id = t.id AND a.outcome = 'completed'
                                 AND a.fencing_token = t.fencing_token)""",
        workflow_ids,
    )
    out.lost += [f"task {r['id']} is completed without a completed attempt of its token" for r in orphans]


def acked_completions(logs: Iterable[Path]) -> dict[str, set[int]]:
    """Task id -> the fencing tokens whose completion an agent saw acknowledged (from the agents' logs)."""
    acked: dict[str, set[int]] = {}
    for path in logs:
        if path.exists():
            for task_id, token in ACKED.findall(path.read_text(errors="replace")):
                acked.setdefault(task_id, set()).add(int(token))
    return acked


async def check_acked(db: Db, acked: dict[str, set[int]], out: Findings) -> int:
    """Every acknowledged completion is in PostgreSQL; returns how many were checked."""
    pairs = [(task_id, token) for task_id, tokens in acked.items() for token in tokens]
    out.double += [f"task {t}: completions with tokens {sorted(k)} were all acknowledged"
                   for t, k in acked.items() if len(k) > 1]  # fmt: skip
    for i in range(0, len(pairs), 5000):
        chunk = pairs[i : i + 5000]
        rows = await db.fetch(
            """SELECT i.id::text AS id, i.token, t.status, t.fencing_token, a.outcome
                 FROM unnest($1::uuid[], $2::bigint[]) AS i(id, token)
                 LEFT JOIN tasks t ON t.id = i.id
                 LEFT JOIN task_attempts a ON a.task_id = i.id AND a.fencing_token = i.token""",
            [p[0] for p in chunk], [p[1] for p in chunk],
        )  # fmt: skip
        for r in rows:
            if r["status"] != "completed" or r["fencing_token"] != r["token"] or r["outcome"] != "completed":
                out.lost.append(
                    f"task {r['id']}: completion with token {r['token']} was acknowledged, but the task is "
                    f"{r['status']} (token {r['fencing_token']}, that attempt {r['outcome']})"
                )
    return len(pairs)


async def check_starts(db: Db, started: Iterable[str], out: Findings) -> None:
    ids = list(started)
    rows = await db.fetch("SELECT id::text AS id FROM executions WHERE id = ANY($1::uuid[])", ids)
    missing = set(ids) - {r["id"] for r in rows}
    out.lost += [f"execution {e}: its start was acknowledged, but it is not in PostgreSQL" for e in sorted(missing)]


async def check_leases(db: Db, dead_agents: list[str], out: Findings) -> None:
    rows = await db.fetch(
        f"""SELECT t.id::text AS id, a.name, extract(epoch FROM CURRENT_TIMESTAMP - t.lease_expires_at)::float8 AS late
              FROM tasks t LEFT JOIN agents a ON a.id = t.agent_id
             WHERE t.status IN ('assigned', 'running')
               AND (a.name = ANY($1::text[]) OR t.lease_expires_at < CURRENT_TIMESTAMP - interval '{LEASE_SLACK} s')""",
        dead_agents,
    )  # fmt: skip
    for r in rows:
        why = "whose process is gone" if r["name"] in dead_agents else f"{r['late']:.0f}s past its expiry"
        out.leases.append(f"task {r['id']} is leased to agent {r['name']}, {why}")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def mirror_drift(db: Db, redis: aioredis.Redis) -> list[str]:
    """How the Redis queue differs from PostgreSQL's pending tasks, and task keys that would never
    expire although their task is not live ([] if none)."""
    rows = await db.fetch("SELECT id::text AS id, status FROM tasks WHERE status IN ('pending', 'assigned', 'running')")
    pg = {r["id"] for r in rows if r["status"] == "pending"}
    zset = {_text(m) for m in await redis.zrange(keys.TASKS_PRIORITY, 0, -1)}
    listed = {_text(m) for m in await redis.lrange(keys.TASKS_PENDING, 0, -1)}
    out = []
    for name, ids in ((keys.TASKS_PRIORITY, zset), (keys.TASKS_PENDING, listed)):
        if ids != pg:
            out.append(f"{name}: {len(ids - pg)} ids not pending in PostgreSQL, {len(pg - ids)} pending ids missing")
    live = {keys.task_data(r["id"]) for r in rows}
    running = await db.fetch("SELECT id::text AS id FROM executions WHERE status IN ('pending', 'running')")
    live |= {keys.workflow_state(r["id"]) for r in running}
    for what, pattern in (("tasks", keys.task_data("*")), ("executions", keys.workflow_state("*"))):
        forever = [key for key in await _without_ttl(redis, pattern) if key not in live]
        if forever:
            out.append(f"{len(forever)} keys of ended {what} never expire, e.g. {forever[0]}")
    return out


async def _without_ttl(redis: aioredis.Redis, pattern: str, most: int = 500_000) -> list[str]:
    """Keys matching `pattern` that have no expiry (at most `most` keys looked at)."""
    found: list[str] = []
    batch: list[str] = []
    seen = 0
    async for key in redis.scan_iter(match=pattern, count=1000):
        batch.append(_text(key))
        seen += 1
        if len(batch) == 1000 or seen >= most:
            found += await _no_ttl(redis, batch)
            batch = []
        if seen >= most:
            break
    return found + (await _no_ttl(redis, batch) if batch else [])


async def _no_ttl(redis: aioredis.Redis, batch: list[str]) -> list[str]:
    async with redis.pipeline(transaction=False) as pipe:
        for key in batch:
            pipe.ttl(key)
        ttls = await pipe.execute()
    return [key for key, ttl in zip(batch, ttls, strict=True) if ttl == -1]


async def check_mirror(db: Db, redis: aioredis.Redis, out: Findings, timeout: float) -> float:
    """Wait (up to `timeout`) until the mirror equals PostgreSQL; returns how long that took."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    while True:
        try:
            drift = await mirror_drift(db, redis)
        except (OSError, aioredis.RedisError) as err:
            drift = [f"Redis unreadable: {type(err).__name__}: {err}"]
        if not drift:
            return loop.time() - began
        if loop.time() - began > timeout:
            out.mirror += drift
            return loop.time() - began
        await asyncio.sleep(0.5)
