"""The live queue and leases in Redis, under the spec's keys, mirrored from PostgreSQL.

PostgreSQL decides (claims are `FOR UPDATE SKIP LOCKED` there); Redis shows the queue to whoever
looks (operators, metrics, the console) in O(log n): `ossa:tasks:priority` (ready tasks by
priority, FIFO within one), `ossa:tasks:pending` (their arrival order), `ossa:task:{id}:data`,
`ossa:task:{id}:lock` (holding agent, expiring with the lease) and, per execution,
`ossa:workflow:{executionId}:state|steps|variables`. Writes happen after the commit and are best
effort; `check()` rebuilds the queue keys from PostgreSQL when they drift (Redis flushed or
restarted), so nothing is lost.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from ossa_runtime import keys

log = logging.getLogger("ossa.orchestrator.mirror")
PRIORITY_BAND = 10**13  # > any epoch-milliseconds timestamp


def score(row: Any) -> float:
    """Ascending ZSET order = priority 10 first, then oldest first."""
    return float((10 - row["priority"]) * PRIORITY_BAND + int(row["enqueued_at"].timestamp() * 1000))


class QueueMirror:
    def __init__(self, redis: aioredis.Redis, pool: asyncpg.Pool) -> None:
        self.redis = redis
        self.pool = pool

    async def _run(self, what: str, pipe: Any) -> None:
        try:
            await pipe.execute()
        except Exception as err:  # PostgreSQL has the truth; check() repairs the mirror
            log.warning("redis mirror update failed", extra={"metadata": {"what": what, "error": str(err)}})

    async def queued(self, rows: Iterable[Any]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for row in rows:
            pipe.zadd(keys.TASKS_PRIORITY, {row["id"]: score(row)})
            pipe.rpush(keys.TASKS_PENDING, row["id"])
            pipe.hset(keys.task_data(row["id"]), mapping=_data(row))  # type: ignore[arg-type]
        await self._run("queued", pipe)

    async def requeued(self, task_id: str) -> None:
        """A task went back to the queue (retry or expired lease): show it there again."""
        row = await self.pool.fetchrow(
            """SELECT id::text AS id, execution_id::text AS execution_id, name, status, priority, capability,
                      agent_type, enqueued_at FROM tasks WHERE id = $1 AND status = 'pending'""",
            task_id,
        )
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(keys.task_lock(task_id))
        await self._run("requeued", pipe)
        if row is not None:
            await self.queued([row])

    async def leased(self, rows: Iterable[Any]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for row in rows:
            pipe.zrem(keys.TASKS_PRIORITY, row["id"])
            pipe.lrem(keys.TASKS_PENDING, 1, row["id"])
            pipe.set(keys.task_lock(row["id"]), row["agent_id"], ex=int(row["lease_seconds"]) + 1)
            pipe.hset(keys.task_data(row["id"]), mapping=_data(row))  # type: ignore[arg-type]
        await self._run("leased", pipe)

    async def renewed(self, task_id: str, agent_id: str, seconds: float) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(keys.task_lock(task_id), agent_id, ex=max(1, int(seconds) + 1))
        pipe.hset(keys.task_data(task_id), "status", "running")
        await self._run("renewed", pipe)

    async def ended(self, task_id: str, status: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(keys.task_lock(task_id))
        pipe.zrem(keys.TASKS_PRIORITY, task_id)
        pipe.lrem(keys.TASKS_PENDING, 1, task_id)
        pipe.hset(keys.task_data(task_id), "status", status)
        pipe.expire(keys.task_data(task_id), 24 * 3600)
        await self._run("ended", pipe)

    async def execution(self, row: Any, steps: list[str] | None = None) -> None:
        state = {
            "execution_id": row["id"],
            "workflow_id": row["workflow_id"],
            "status": row["status"],
            "completed_steps": json.dumps(sorted((row["results"] or {}).keys())),
        }
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(keys.workflow_state(row["id"]), mapping=state)  # type: ignore[arg-type]
        if steps is not None:
            pipe.delete(keys.workflow_steps(row["id"]))
            pipe.rpush(keys.workflow_steps(row["id"]), *steps)
            variables = {k: json.dumps(v) for k, v in (row["context"] or {}).items()}
            if variables:
                pipe.hset(keys.workflow_variables(row["id"]), mapping=variables)  # type: ignore[arg-type]
        if row["status"] in ("completed", "failed", "cancelled"):
            for key in (
                keys.workflow_state(row["id"]),
                keys.workflow_steps(row["id"]),
                keys.workflow_variables(row["id"]),
            ):
                pipe.expire(key, 24 * 3600)
        await self._run("execution", pipe)

    async def check(self) -> bool:
        """Rebuild the queue keys from PostgreSQL if they disagree with it; True if rebuilt."""
        expected = await self.pool.fetchval("SELECT count(*) FROM tasks WHERE status = 'pending'")
        queued = await self.redis.zcard(keys.TASKS_PRIORITY)
        if queued == expected:
            return False
        log.warning(
            "rebuilding the Redis queue from PostgreSQL", extra={"metadata": {"redis": queued, "postgres": expected}}
        )
        rows = await self.pool.fetch(
            """SELECT id::text AS id, execution_id::text AS execution_id, name, status, priority, capability,
                      agent_type, enqueued_at FROM tasks WHERE status = 'pending'"""
        )
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(keys.TASKS_PRIORITY, keys.TASKS_PENDING)
        await self._run("rebuild", pipe)
        await self.queued(sorted(rows, key=score))
        return True


def _data(row: Any) -> dict[str, str]:
    return {
        "id": row["id"],
        "execution_id": row["execution_id"],
        "step": row["name"],
        "status": row["status"],
        "priority": str(row["priority"]),
        "capability": row["capability"],
        "agent_type": row["agent_type"] or "",
        "agent_id": dict(row).get("agent_id") or "",
    }
