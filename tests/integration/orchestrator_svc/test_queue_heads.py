"""A backlog of one capability costs the others nothing: claims and a start's sync-match check read
only the heads of the queues they serve (migration 0013: idx_tasks_ready_capability and
idx_tasks_ready_target; orchestrator_svc/claims.py walks one index per capability and per routed
agent). Checked on the plans PostgreSQL runs (EXPLAIN ANALYZE, rolled back): task rows read, not
timings. Before, each read every pending task queued ahead of its own. The orchestrator runs these
statements on connections with generic plans (ossa_runtime/db.py, GENERIC_PLANS): each is also
run there, its plan read back through auto_explain, with the same bound."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from orchestrator_svc import claims, newtasks, starts
from orchestrator_svc.claims import Claims, Want
from orchestrator_svc.definition import parse_definition
from ossa_runtime.db import create_pool
from ossa_runtime.settings import Settings

pytestmark = pytest.mark.integration
BACKLOG = 3000  # pending tasks of another capability, queued ahead of the agent's own
READ_AT_MOST = 50  # task rows a statement may read: the heads of its own queues, not the backlog


@pytest.fixture(scope="module")
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def planned(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """Connections like the orchestrator's for starts and claims: generic plans."""
    pool = await create_pool(settings, generic_plans=True)
    yield pool
    await pool.close()


async def _workflow(pool: asyncpg.Pool, capability: str) -> str:
    definition = json.dumps({"steps": [{"id": "s", "capability": capability}]})
    sql = "INSERT INTO workflows (name, version, definition, status) VALUES ($1, '1.0.0', $2::jsonb, 'published') "
    return str(await pool.fetchval(sql + "RETURNING id", f"heads-{secrets.token_hex(4)}", definition))


async def _queue(pool: asyncpg.Pool, capability: str, count: int, target: str | None = None) -> list[str]:
    """`count` pending tasks of `capability` (routed to `target` if given) in one execution, oldest first."""
    execution = await pool.fetchval(
        "INSERT INTO executions (workflow_id, status) VALUES ($1, 'running') RETURNING id",
        await _workflow(pool, capability),
    )
    rows = await pool.fetch(
        """INSERT INTO tasks (execution_id, name, status, capability, target_agent_id, enqueued_at)
           SELECT $1, 's' || g, 'pending', $2, $3::uuid, CURRENT_TIMESTAMP + make_interval(secs => g)
             FROM generate_series(1, $4) g RETURNING id::text AS id""",
        execution, capability, target, count,
    )  # fmt: skip
    return [r["id"] for r in rows]


async def _agent(pool: asyncpg.Pool) -> str:
    return str(
        await pool.fetchval(
            "INSERT INTO agents (name, type, version) VALUES ($1, 'worker', '1.0.0') RETURNING id",
            f"heads-{secrets.token_hex(4)}",
        )
    )


@pytest.fixture(scope="module")
async def backlog(pool: asyncpg.Pool) -> str:
    """BACKLOG tasks of one capability, queued before anything the tests queue."""
    capability = f"backlog-{secrets.token_hex(4)}"
    await _queue(pool, capability, BACKLOG)
    await pool.execute("ANALYZE tasks")
    return capability


def _task_rows_read(node: dict[str, Any]) -> int:
    """Rows of `tasks` the plan's scans produced or threw away, over every loop."""
    read = 0
    if node.get("Relation Name") == "tasks" and "Scan" in node.get("Node Type", ""):
        loops = node.get("Actual Loops", 1)
        read += int(node.get("Actual Rows", 0) * loops) + int(node.get("Rows Removed by Filter", 0) * loops)
        read += int(node.get("Rows Removed by Index Recheck", 0))
    return read + sum(_task_rows_read(child) for child in node.get("Plans", ()))


async def _rows_read(pool: asyncpg.Pool, sql: str, *args: Any) -> int:
    async with pool.acquire() as conn:
        tr = conn.transaction()
        await tr.start()
        try:
            plan = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, *args)
        finally:
            await tr.rollback()
    tree = json.loads(plan) if isinstance(plan, str) else plan  # the pool may decode json itself
    return _task_rows_read(tree[0]["Plan"])


async def _rows_read_generic(pool: asyncpg.Pool, sql: str, *args: Any) -> int:
    """Run `sql` as the orchestrator does (a prepared statement, generic plan; rolled back) and
    count the task rows of the plan it ran, as auto_explain reports it."""
    plans: list[str] = []
    async with pool.acquire() as conn:
        assert await conn.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
        await conn.execute(
            "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on;"
            " SET auto_explain.log_format = json; SET auto_explain.log_level = notice;"
        )
        listener = lambda _conn, message: plans.append(message.message)  # noqa: E731
        conn.add_log_listener(listener)
        tr = conn.transaction()
        await tr.start()
        try:
            await conn.fetch(sql, *args)
        finally:
            await tr.rollback()
            conn.remove_log_listener(listener)
            await conn.execute("RESET ALL")  # RESET: the pool's own settings stay (they are the session's defaults)
    logged = [json.loads(p[p.index("{") :]) for p in plans if "Query Text" in p]
    [plan] = [p["Plan"] for p in logged if p["Query Text"].strip() == sql.strip()]  # not asyncpg's type lookups
    return _task_rows_read(plan)


async def test_claim_one_reads_only_the_head_of_its_queues(
    pool: asyncpg.Pool, planned: asyncpg.Pool, backlog: str
) -> None:
    capability = f"cap-{secrets.token_hex(4)}"
    agent_id = await _agent(pool)
    mine = await _queue(pool, capability, 3)
    routed = await _queue(pool, f"other-{secrets.token_hex(4)}", 1, target=agent_id)
    args = (agent_id, [capability], "worker", 8, 8, 30.0)
    for how, read in (("custom", await _rows_read(pool, claims._CLAIM_ONE, *args)),
                      ("generic", await _rows_read_generic(planned, claims._CLAIM_ONE, *args))):  # fmt: skip
        assert read <= READ_AT_MOST, f"claim_one ({how} plan) read {read} task rows with {BACKLOG} of {backlog} queued"
    rows, more = await Claims(pool, quarantine=30.0).claim_one(Want(agent_id, frozenset({capability}), "worker", 8, 3))
    assert [r["id"] for r in rows] == [mine[0], routed[0], mine[1]]  # both queues merged in queue order
    assert more  # mine[2] is left


async def test_a_claim_for_several_agents_reads_only_their_queues(
    pool: asyncpg.Pool, planned: asyncpg.Pool, backlog: str
) -> None:
    capabilities = [f"cap-{secrets.token_hex(4)}" for _ in range(2)]
    agents = [await _agent(pool) for _ in capabilities]
    for capability in capabilities:
        await _queue(pool, capability, 2)
    args = ([uuid.UUID(a) for a in agents], capabilities, 8, 30.0)
    for how, read in (("custom", await _rows_read(pool, claims._HELD_AND_PICKED, *args)),
                      ("generic", await _rows_read_generic(planned, claims._HELD_AND_PICKED, *args))):  # fmt: skip
        assert read <= READ_AT_MOST, f"the claim ({how} plan) read {read} task rows with {BACKLOG} of {backlog} queued"
    wants = [Want(a, frozenset({c}), "worker", 4, 4) for a, c in zip(agents, capabilities, strict=True)]
    leased, _ = await Claims(pool, quarantine=30.0).claim(wants)
    assert {a: len(rows) for a, rows in leased.items()} == {a: 2 for a in agents}


async def test_a_starts_sync_match_check_does_not_read_the_backlog(
    pool: asyncpg.Pool, planned: asyncpg.Pool, backlog: str
) -> None:
    """The start statement leases a root task to a reserved idle agent only if nothing of its
    capability is queued ahead: that check reads the capability's own queue, here empty."""
    capability = f"cap-{secrets.token_hex(4)}"
    workflow_id = await _workflow(pool, capability)
    agent_id = await _agent(pool)
    definition = parse_definition({"steps": [{"id": "s", "capability": capability}]})
    plan = starts.plan(starts.StartItem(workflow_id, definition, {}, None, None))
    task_id = plan.tasks[0]["id"]
    args = [
        *newtasks.columns([plan.execution], starts._E),
        *newtasks.columns(plan.tasks),
        [task_id], [agent_id], [4], [1], 30.0,
    ]  # fmt: skip
    for how, read in (("custom", await _rows_read(pool, starts._INSERT, *args)),
                      ("generic", await _rows_read_generic(planned, starts._INSERT, *args))):  # fmt: skip
        assert read <= READ_AT_MOST, f"the start ({how} plan) read {read} task rows with {BACKLOG} of {backlog} queued"
    async with pool.acquire() as conn:
        [started] = await starts._insert(conn, [plan], {task_id: starts.Reservation(agent_id, 4, 1)}, 30.0, False)
    assert isinstance(started, starts.Started) and [t["agent_id"] for t in started.leased] == [agent_id]
