"""The live queue and leases in Redis, under the spec's keys, mirrored from PostgreSQL.

PostgreSQL decides (claims are `FOR UPDATE SKIP LOCKED` there); Redis shows the queue to whoever
looks (operators, metrics, the console) in O(log n): `ossa:tasks:priority` (ready tasks by
priority, FIFO within one), `ossa:tasks:pending` (their arrival order), `ossa:task:{id}:data`,
`ossa:task:{id}:lock` (holding agent, expiring with the lease) and, per execution,
`ossa:workflow:{executionId}:state|steps|variables`. Writes happen after the commit and are best
effort; `check()` repairs the queue keys from PostgreSQL when they drift, so nothing is lost: whole
when Redis is new or was flushed (`ossa:tasks:mirrored` is gone), otherwise id by id, for the
differences that outlast one check (one seen once may be a write in flight). The keys of what
ended expire; when a write may have been lost (one failed, or Redis restarted and its append-only
file missed the last second), `check()` also gives an expiry to the keys of tasks and executions
that ended meanwhile, which would otherwise stay forever.
"""

from __future__ import annotations

import json
import logging
import re
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


# How long the keys of an ended task or execution stay: enough for whoever watches the mirror to see
# the end, while Redis stays the size of the live work (PostgreSQL keeps the history). A day of them
# at a steady 100 tasks/s was millions of hashes: Redis grew without bound under load.
ENDED_TTL_SECONDS = 60
MAX_SCAN = 1_000_000  # keys one repair looks at
_PENDING_ROWS = """SELECT id::text AS id, execution_id::text AS execution_id, name, status, priority, capability,
                         agent_type, enqueued_at FROM tasks"""
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# Applies a batch of mirror writes in one round trip. KEYS: the priority ZSET and pending LIST.
# ARGV[1]: a JSON list of ops, each [kind, ...] with the keys it touches spelled out by the caller;
# ARGV[2], ARGV[3] (optional): a channel and a message published after the writes, in the same call
# (the after-commit announcement to the other orchestrator processes, orchestrator_svc/events.py).
APPLY_LUA = """
local priority, pending = KEYS[1], KEYS[2]
local ended = ENDED_TTL
local function hset(key, fields)
  if #fields > 0 then redis.call('HSET', key, unpack(fields)) end
end
-- Out of the queue keys. LREM reads the list until it finds the id (all of it when the id is not
-- there): only a task that was in the ZSET is looked for in the LIST, so a task leased by its start
-- or already leased costs no walk of a long queue. An id is in the LIST exactly when it is in the
-- ZSET: 'q' appends it only when ZADD added it (a task queued twice, say by a rebuild racing a
-- commit, is listed once).
local function unqueue(id)
  if redis.call('ZREM', priority, id) == 1 then redis.call('LREM', pending, 1, id) end
end
for _, op in ipairs(cjson.decode(ARGV[1])) do
  local kind = op[1]
  if kind == 'q' then            -- queued: id, score, data key, data fields (listed once: see unqueue)
    if redis.call('ZADD', priority, op[3], op[2]) == 1 then redis.call('RPUSH', pending, op[2]) end
    hset(op[4], op[5])
  elseif kind == 'l' then        -- leased: id, lock key, agent, ttl, data key, data fields
    unqueue(op[2])
    redis.call('SET', op[3], op[4], 'EX', op[5])
    hset(op[6], op[7])
  elseif kind == 'r' then        -- renewed: lock key, agent, ttl, data key
    redis.call('SET', op[2], op[3], 'EX', op[4])
    redis.call('HSET', op[5], 'status', 'running')
  elseif kind == 'u' then        -- unlocked (back in the queue; a 'q' follows): lock key
    redis.call('DEL', op[2])
  elseif kind == 'd' then        -- dropped from the queue keys (found there, not pending): id
    unqueue(op[2])
  elseif kind == 'e' then        -- ended: id, lock key, data key, status
    redis.call('DEL', op[3])
    unqueue(op[2])
    redis.call('HSET', op[4], 'status', op[5])
    redis.call('EXPIRE', op[4], ended)
  elseif kind == 'x' then        -- execution: state key, state fields, steps key, steps, vars key, vars, final
    hset(op[2], op[3])
    if op[5] ~= cjson.null then
      redis.call('DEL', op[4])
      if #op[5] > 0 then redis.call('RPUSH', op[4], unpack(op[5])) end
      hset(op[6], op[7])
    end
    if op[8] then
      redis.call('EXPIRE', op[2], ended)
      redis.call('EXPIRE', op[4], ended)
      redis.call('EXPIRE', op[6], ended)
    end
  end
end
if ARGV[3] then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return 0
""".replace("ENDED_TTL", str(ENDED_TTL_SECONDS))


def _flat(mapping: dict[str, str]) -> list[str]:
    return [x for kv in mapping.items() for x in kv]


class Batch:
    """Mirror writes collected after commits and applied in one script call (QueueMirror.apply)."""

    def __init__(self) -> None:
        self.ops: list[list[Any]] = []

    def queued(self, rows: Iterable[Any]) -> None:
        for row in rows:
            self.ops.append(["q", row["id"], score(row), keys.task_data(row["id"]), _flat(_data(row))])

    def leased(self, rows: Iterable[Any]) -> None:
        for row in rows:
            tid = row["id"]
            self.ops.append(["l", tid, keys.task_lock(tid), row["agent_id"], int(row["lease_seconds"]) + 1,
                             keys.task_data(tid), _flat(_data(row))])  # fmt: skip

    def renewed(self, task_id: str, agent_id: str, seconds: float) -> None:
        self.ops.append(["r", keys.task_lock(task_id), agent_id, max(1, int(seconds) + 1), keys.task_data(task_id)])

    def unlocked(self, task_id: str) -> None:
        """A lease ended and the task went back to the queue (queued() follows with its row)."""
        self.ops.append(["u", keys.task_lock(task_id)])

    def dropped(self, task_id: str) -> None:
        """Out of the queue keys only (the repair of an id PostgreSQL does not have pending)."""
        self.ops.append(["d", task_id])

    def ended(self, task_id: str, status: str) -> None:
        self.ops.append(["e", task_id, keys.task_lock(task_id), keys.task_data(task_id), status])

    def execution(self, row: Any, steps: list[str] | None = None) -> None:
        eid = row["id"]
        state = {
            "execution_id": eid,
            "workflow_id": row["workflow_id"],
            "status": row["status"],
            "completed_steps": json.dumps(sorted((row["results"] or {}).keys())),
        }
        variables = {k: json.dumps(v) for k, v in (row["context"] or {}).items()} if steps is not None else {}
        final = row["status"] in ("completed", "failed", "cancelled")
        self.ops.append(["x", keys.workflow_state(eid), _flat(state), keys.workflow_steps(eid), steps,
                         keys.workflow_variables(eid), _flat(variables), final])  # fmt: skip


class QueueMirror:
    def __init__(self, redis: aioredis.Redis, pool: asyncpg.Pool) -> None:
        self.redis = redis
        self.pool = pool
        self._apply = redis.register_script(APPLY_LUA)
        # A write may have been lost since the last check(): at start-up (an earlier process may have
        # died mid-write), after a failed write, after Redis restarted (its run_id changed).
        self.dirty = True
        self._run_id = ""
        self._suspects: set[str] = set()  # ids whose queue keys differed from PostgreSQL at the last check

    async def apply(self, batch: Batch, announce: tuple[str, str] | None = None) -> bool:
        """One round trip for the whole batch, and for `announce` ((channel, message): published after
        the writes) if given; best effort (PostgreSQL has the truth, check() repairs). False if it failed."""
        if not batch.ops and announce is None:
            return True
        try:
            await self._apply(keys=[keys.TASKS_PRIORITY, keys.TASKS_PENDING],
                              args=[json.dumps(batch.ops), *(announce or ())])  # fmt: skip
            return True
        except Exception as err:
            self.dirty = True
            log.warning("redis mirror update failed", extra={"metadata": {"error": str(err)}})
            return False

    async def pending_rows(self, task_ids: list[str]) -> list[Any]:
        """The rows of those tasks that are back in the queue (retried or expired), to show them there again."""
        rows: list[Any] = await self.pool.fetch(f"{_PENDING_ROWS} WHERE id = ANY($1::uuid[]) AND status = 'pending'",
                                                task_ids)  # fmt: skip
        return rows

    async def check(self) -> bool:
        """Repair the queue keys from PostgreSQL where they disagree with it (True if anything was
        written); after a write may have been lost, also expire the keys of what ended meanwhile."""
        run_id = str((await self.redis.info("server")).get("run_id", ""))
        if run_id != self._run_id:
            self.dirty, self._run_id = True, run_id
        if await self.redis.exists(keys.TASKS_MIRRORED):
            repaired = await self._repair_drift()
        else:  # a new or flushed Redis
            repaired = await self._rebuild_queue()
        if self.dirty:
            self.dirty = False
            try:
                await self.expire_ended()
            except BaseException:
                self.dirty = True  # the next check tries again
                raise
        return repaired

    async def _rebuild_queue(self) -> bool:
        """Every task PostgreSQL has pending into the queue keys, then the marker that they were there.
        The keys hold only writes made since Redis was new or flushed, right ones: none is deleted
        (a task queued meanwhile stays; one that left meanwhile is dropped by the drift repair)."""
        rows = await self.pool.fetch(f"{_PENDING_ROWS} WHERE status = 'pending'")
        batch = Batch()
        batch.queued(sorted(rows, key=score))
        await self.apply(batch)
        await self.redis.set(keys.TASKS_MIRRORED, "1")
        self._suspects = set()
        log.warning("rebuilt the Redis queue from PostgreSQL", extra={"metadata": {"pending": len(rows)}})
        return True

    async def _repair_drift(self) -> bool:
        """Writes in flight make the two sides differ for a moment: an id is repaired only when it
        differs in two checks running (a lost write), and only that id; equal counts cost nothing."""
        expected = await self.pool.fetchval("SELECT count(*) FROM tasks WHERE status = 'pending'")
        if await self.redis.zcard(keys.TASKS_PRIORITY) == expected:
            self._suspects = set()
            return False
        pending = {r["id"] for r in await self.pool.fetch("SELECT id::text AS id FROM tasks WHERE status = 'pending'")}
        queued = {str(member) for member in await self.redis.zrange(keys.TASKS_PRIORITY, 0, -1)}
        differing = (pending - queued) | (queued - pending)
        confirmed, self._suspects = differing & self._suspects, differing
        if not confirmed:
            return False
        self._suspects -= confirmed
        rows = await self.pool.fetch(f"{_PENDING_ROWS} WHERE id = ANY($1::uuid[]) AND status = 'pending'",
                                     [i for i in confirmed if _UUID.fullmatch(i)])  # fmt: skip
        batch = Batch()
        batch.queued(sorted(rows, key=score))
        for task_id in confirmed - {r["id"] for r in rows}:
            batch.dropped(task_id)
        counts = {"queued": len(rows), "dropped": len(confirmed) - len(rows)}
        log.warning("repaired the Redis queue from PostgreSQL", extra={"metadata": counts})
        return await self.apply(batch)

    async def expire_ended(self) -> int:
        """Give the keys of ended tasks and executions that have none their expiry (their end never
        reached Redis); returns how many tasks and executions that was."""
        tasks = await self._without_expiry(keys.task_data("*"))
        executions = await self._without_expiry(keys.workflow_state("*"))
        live_tasks = {r["id"] for r in await self.pool.fetch(
            """SELECT id::text AS id FROM tasks
                WHERE id = ANY($1::uuid[]) AND status IN ('pending', 'assigned', 'running', 'waiting_approval')""",
            tasks,
        )}  # fmt: skip
        live_executions = {r["id"] for r in await self.pool.fetch(
            "SELECT id::text AS id FROM executions WHERE id = ANY($1::uuid[])"
            " AND status IN ('pending', 'running', 'waiting_approval')",
            executions,
        )}  # fmt: skip
        ended = [keys.task_data(t) for t in tasks if t not in live_tasks]
        for e in executions:
            if e not in live_executions:
                ended += [keys.workflow_state(e), keys.workflow_steps(e), keys.workflow_variables(e)]
        for i in range(0, len(ended), 1000):
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in ended[i : i + 1000]:
                    pipe.expire(key, ENDED_TTL_SECONDS)
                await pipe.execute()
        count = len(tasks) - len(live_tasks) + len(executions) - len(live_executions)
        if count:
            log.warning("expired the Redis keys of ended work whose end was not mirrored",
                        extra={"metadata": {"count": count}})  # fmt: skip
        return count

    async def _without_expiry(self, pattern: str) -> list[str]:
        """The ids in the keys matching `ossa:<entity>:*:<field>` that have no expiry (at most MAX_SCAN keys)."""
        found: list[str] = []
        names: list[str] = []
        seen = 0
        async for key in self.redis.scan_iter(match=pattern, count=1000):
            names.append(key)
            seen += 1
            if len(names) == 1000 or seen >= MAX_SCAN:
                found += await self._no_ttl(names)
                names = []
            if seen >= MAX_SCAN:
                break
        found += await self._no_ttl(names)
        ids = [name.split(":")[2] for name in found if name.count(":") == 3]
        return [i for i in ids if _UUID.fullmatch(i)]  # anything else is no key of ours

    async def _no_ttl(self, names: list[str]) -> list[str]:
        if not names:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.ttl(name)
            ttls = await pipe.execute()
        return [name for name, ttl in zip(names, ttls, strict=True) if ttl == -1]


def _data(row: Any) -> dict[str, str]:
    return {
        "id": row["id"],
        "execution_id": row["execution_id"],
        "step": row["name"],
        "status": row["status"],
        "priority": str(row["priority"]),
        "capability": row["capability"],
        "agent_type": row["agent_type"] or "",
        "agent_id": row.get("agent_id") or "",
    }
