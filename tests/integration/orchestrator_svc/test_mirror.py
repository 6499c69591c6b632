"""The Redis mirror repairs itself after lost writes: keys of tasks and executions whose end never
reached Redis (a failed write, Redis restarted without its last second) get their expiry back, so
Redis does not grow forever; the keys of live work keep theirs (none)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
import redis.asyncio as aioredis

from orchestrator_svc.mirror import ENDED_TTL_SECONDS, Batch, QueueMirror
from ossa_runtime import keys
from ossa_runtime.db import create_pool
from ossa_runtime.redis import create_redis
from ossa_runtime.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def stores(settings: Settings) -> AsyncIterator[tuple[asyncpg.Pool, aioredis.Redis]]:
    pool = await create_pool(settings, service="test")
    redis = create_redis(settings)
    yield pool, redis
    await redis.aclose()
    await pool.close()


async def _pending_task(pool: asyncpg.Pool) -> tuple[str, str]:
    """A running execution with one pending task, straight in PostgreSQL; (execution id, task id)."""
    workflow = await pool.fetchval(
        "INSERT INTO workflows (name, version, definition, status) VALUES ($1, '1.0', '{}', 'published') RETURNING id",
        f"mirror-{uuid.uuid4().hex[:8]}",
    )
    execution = await pool.fetchval(
        "INSERT INTO executions (workflow_id, status) VALUES ($1, 'running') RETURNING id::text", workflow
    )
    task = await pool.fetchval(
        "INSERT INTO tasks (execution_id, name, status) VALUES ($1, 's', 'pending') RETURNING id::text", execution
    )
    return execution, task


async def test_keys_of_ended_work_whose_end_was_lost_expire(stores: tuple[asyncpg.Pool, aioredis.Redis]) -> None:
    pool, redis = stores
    live_execution, live_task = await _pending_task(pool)
    gone_execution, gone_task = str(uuid.uuid4()), str(uuid.uuid4())  # ended: their rows say so, or are gone
    for task in (live_task, gone_task):
        await redis.hset(keys.task_data(task), "status", "pending")
    for execution in (live_execution, gone_execution):
        await redis.hset(keys.workflow_state(execution), "status", "running")
        await redis.rpush(keys.workflow_steps(execution), "s")
        await redis.hset(keys.workflow_variables(execution), "x", "1")
    await redis.hset(f"{keys.NS}:task:not-a-uuid:data", "status", "pending")  # not ours: left alone

    mirror = QueueMirror(redis, pool)
    await mirror.check()  # a new process: a write may have been lost before it started

    assert 0 < await redis.ttl(keys.task_data(gone_task)) <= ENDED_TTL_SECONDS
    for key in (keys.workflow_state, keys.workflow_steps, keys.workflow_variables):
        assert 0 < await redis.ttl(key(gone_execution)) <= ENDED_TTL_SECONDS
        assert await redis.ttl(key(live_execution)) == -1
    assert await redis.ttl(keys.task_data(live_task)) == -1
    assert await redis.ttl(f"{keys.NS}:task:not-a-uuid:data") == -1
    assert await redis.zrange(keys.TASKS_PRIORITY, 0, -1) == [live_task]  # the queue rebuilt too
    assert not mirror.dirty


async def test_a_failed_write_or_a_restarted_redis_marks_the_mirror_for_repair(
    stores: tuple[asyncpg.Pool, aioredis.Redis],
) -> None:
    pool, redis = stores
    mirror = QueueMirror(redis, pool)
    await mirror.check()
    assert not mirror.dirty
    mirror._run_id = "an earlier server"  # what check() sees after Redis restarted
    ended = str(uuid.uuid4())
    await redis.hset(keys.task_data(ended), "status", "running")
    await mirror.check()
    assert 0 < await redis.ttl(keys.task_data(ended)) <= ENDED_TTL_SECONDS


async def test_the_announcement_is_published_by_the_mirrors_own_call(
    stores: tuple[asyncpg.Pool, aioredis.Redis],
) -> None:
    """One script call writes the mirror and then publishes the after-commit message (effects.py);
    with no mirror write the message still goes out; a call that fails says so (False)."""
    pool, redis = stores
    mirror = QueueMirror(redis, pool)
    channel = f"test-mirror-{uuid.uuid4().hex[:8]}"
    task = str(uuid.uuid4())
    async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(channel)
        batch = Batch()
        batch.ended(task, "completed")
        assert await mirror.apply(batch, (channel, "first"))
        assert await mirror.apply(Batch(), (channel, "second"))  # nothing to mirror, something to say
        assert await mirror.apply(Batch())  # neither: no call at all
        got = []
        for _ in range(50):
            message = await pubsub.get_message(timeout=0.1)
            if message:
                got.append(message["data"])
            if len(got) == 2:
                break
        assert got == ["first", "second"]
    assert await redis.hget(keys.task_data(task), "status") == "completed"  # written before the publish

    class Down:
        async def __call__(self, **_: object) -> None:
            raise ConnectionError("redis is down")

    mirror._apply = Down()  # type: ignore[assignment]
    assert not await mirror.apply(batch, (channel, "lost"))
    assert mirror.dirty  # check() will rebuild what the failed call did not write


async def test_leased_and_ended_tasks_leave_the_queue_keys_once(stores: tuple[asyncpg.Pool, aioredis.Redis]) -> None:
    """A queued task leaves the ZSET and the LIST when leased; a task leased by its start (never
    queued) or ended after its lease leaves the queue keys as they are (no walk of the LIST)."""
    pool, redis = stores
    await redis.delete(keys.TASKS_PRIORITY, keys.TASKS_PENDING)
    mirror = QueueMirror(redis, pool)
    now = datetime.now(UTC)
    queued = [{"id": str(uuid.uuid4()), "execution_id": str(uuid.uuid4()), "name": "s", "status": "pending",
               "priority": 5, "capability": "c", "agent_type": None, "enqueued_at": now} for _ in range(3)]  # fmt: skip
    first, second, third = (row["id"] for row in queued)
    batch = Batch()
    batch.queued(queued)
    assert await mirror.apply(batch)
    never_queued = {**queued[0], "id": str(uuid.uuid4()), "agent_id": "a", "lease_seconds": 30}
    batch = Batch()
    batch.leased([{**queued[1], "agent_id": "a", "lease_seconds": 30}, never_queued])
    batch.ended(first, "completed")  # ended while still queued (cancelled, say)
    batch.ended(second, "completed")  # after its lease: already out
    assert await mirror.apply(batch)
    assert await redis.lrange(keys.TASKS_PENDING, 0, -1) == [third]
    assert await redis.zrange(keys.TASKS_PRIORITY, 0, -1) == [third]
    assert await redis.get(keys.task_lock(never_queued["id"])) == "a"
    # Queued twice (a rebuild racing the commit that queued it): listed once, and gone once leased.
    batch = Batch()
    batch.queued([queued[2]])
    assert await mirror.apply(batch)
    assert await redis.lrange(keys.TASKS_PENDING, 0, -1) == [third]
    batch = Batch()
    batch.leased([{**queued[2], "agent_id": "a", "lease_seconds": 30}])
    batch.ended(third, "completed")
    assert await mirror.apply(batch)
    assert await redis.lrange(keys.TASKS_PENDING, 0, -1) == []
    assert await redis.zcard(keys.TASKS_PRIORITY) == 0


async def test_a_difference_is_repaired_only_when_it_outlasts_one_check(
    stores: tuple[asyncpg.Pool, aioredis.Redis],
) -> None:
    """While work flows a commit's mirror write may still be on its way: a check that sees an id
    differ only remembers it; the next check that still sees it differ repairs that id alone (a task
    pending in PostgreSQL is queued, one in the queue keys that is not pending is dropped); the
    queue is never rebuilt whole while the keys were not flushed."""
    pool, redis = stores
    mirror = QueueMirror(redis, pool)
    for _ in range(3):  # what earlier tests left differing is repaired first
        await mirror.check()
    assert not await mirror.check()
    assert await redis.exists(keys.TASKS_MIRRORED)
    _, lost = await _pending_task(pool)  # its 'q' write never came
    _, in_flight = await _pending_task(pool)
    stale = str(uuid.uuid4())  # its 'e' write never came
    batch = Batch()
    batch.queued([{"id": stale, "execution_id": str(uuid.uuid4()), "name": "s", "status": "pending", "priority": 5,
                   "capability": "c", "agent_type": None, "enqueued_at": datetime.now(UTC)}])  # fmt: skip
    assert await mirror.apply(batch)

    assert not await mirror.check()  # seen once: perhaps in flight
    queued = set(await redis.zrange(keys.TASKS_PRIORITY, 0, -1))
    assert stale in queued and lost not in queued and in_flight not in queued

    batch = Batch()  # the write in flight arrives; its task is no longer a difference
    batch.queued(await mirror.pending_rows([in_flight]))
    assert await mirror.apply(batch)
    _, newer = await _pending_task(pool)  # differs for the first time at the next check
    assert await mirror.check()
    queued = set(await redis.zrange(keys.TASKS_PRIORITY, 0, -1))
    assert lost in queued and in_flight in queued and stale not in queued and newer not in queued
    assert set(await redis.lrange(keys.TASKS_PENDING, 0, -1)) == queued
    assert await redis.hget(keys.task_data(lost), "status") == "pending"

    assert await mirror.check()  # and now `newer` outlasted a check too
    assert newer in set(await redis.zrange(keys.TASKS_PRIORITY, 0, -1))
    assert not await mirror.check()  # nothing differs: no write


async def test_a_flushed_redis_gets_its_queue_back_at_the_next_check(
    stores: tuple[asyncpg.Pool, aioredis.Redis],
) -> None:
    pool, redis = stores
    mirror = QueueMirror(redis, pool)
    await mirror.check()
    _, task = await _pending_task(pool)
    await redis.flushdb()
    assert await mirror.check()  # the marker is gone with the flush: no second check needed
    assert task in set(await redis.zrange(keys.TASKS_PRIORITY, 0, -1))
    assert await redis.exists(keys.TASKS_MIRRORED)
