"""orchestrator_svc.claims on a real PostgreSQL: `claim_one` leases up to the agent's room, in queue
order, and says whether the queue holds more for it (exactly: an agent that took the last task is
not left in backlog, which would cost it an empty claim and its next task's sync match)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from orchestrator_svc.claims import Claims, Want
from ossa_runtime.db import create_pool
from ossa_runtime.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings)
    yield pool
    await pool.close()


async def queue(pool: asyncpg.Pool, capability: str, count: int) -> list[str]:
    """`count` pending tasks of `capability`, one execution each; their ids in queue order."""
    workflow = await pool.fetchval(
        "INSERT INTO workflows (name, version, definition, status) VALUES ($1, '1.0.0', '{}', 'published') "
        "RETURNING id",
        f"claims-{secrets.token_hex(4)}",
    )
    ids = []
    for i in range(count):
        execution = await pool.fetchval(
            "INSERT INTO executions (workflow_id, status) VALUES ($1, 'pending') RETURNING id", workflow
        )
        task = str(uuid.uuid4())
        await pool.execute(
            "INSERT INTO tasks (id, execution_id, name, status, capability, enqueued_at) "
            "VALUES ($1, $2, 's', 'pending', $3, CURRENT_TIMESTAMP + make_interval(secs => $4))",
            task, execution, capability, i,
        )  # fmt: skip
        ids.append(task)
    return ids


async def agent(pool: asyncpg.Pool) -> str:
    return str(
        await pool.fetchval(
            "INSERT INTO agents (name, type, version, capabilities) VALUES ($1, 'worker', '1.0.0', '[]') RETURNING id",
            f"claimer-{secrets.token_hex(4)}",
        )
    )


@pytest.mark.parametrize(("queued", "room", "leased", "more"), [(2, 2, 2, False), (3, 2, 2, True), (1, 4, 1, False)])
async def test_claim_one_says_exactly_whether_more_is_queued(
    pool: asyncpg.Pool, queued: int, room: int, leased: int, more: bool
) -> None:
    capability = f"cap-{secrets.token_hex(4)}"
    ids = await queue(pool, capability, queued)
    agent_id = await agent(pool)
    want = Want(agent_id, frozenset({capability}), "worker", 8, room)
    rows, cut = await Claims(pool, quarantine=30.0).claim_one(want)
    assert [r["id"] for r in rows] == ids[:leased]  # queue order
    assert all(r["agent_id"] == agent_id and r["status"] == "assigned" for r in rows)
    assert cut is more


async def test_nothing_leased_is_not_more(pool: asyncpg.Pool) -> None:
    """An agent at its limit leases nothing and is not told of more: the tick and new work wake it."""
    capability = f"cap-{secrets.token_hex(4)}"
    await queue(pool, capability, 2)
    agent_id = await agent(pool)
    want = Want(agent_id, frozenset({capability}), "worker", 0, 0)
    rows, cut = await Claims(pool, quarantine=30.0).claim_one(want)
    assert (rows, cut) == ([], False)
