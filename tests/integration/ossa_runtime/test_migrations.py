"""ossa_runtime.db: versioned migrations, applied once even when services start together."""

from __future__ import annotations

import asyncio
import secrets
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from ossa_runtime.db import Migration, MigrationError, load_migrations, migrate

pytestmark = pytest.mark.integration

SPEC_TABLES = {"agents", "workflows", "executions", "tasks", "metrics"}
SPEC_INDEXES = {
    "idx_agents_type",
    "idx_agents_status",
    "idx_workflows_status",
    "idx_executions_workflow",
    "idx_executions_status",
    "idx_tasks_execution",
    "idx_tasks_agent",
    "idx_tasks_status",
    "idx_metrics_agent_timestamp",
}


async def test_concurrent_migrations_apply_once(database_url: str) -> None:
    conns = [await asyncpg.connect(database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        versions = [m.version for m in load_migrations()]
        assert sorted(v for r in results for v in r) == versions  # each applied by exactly one caller
        assert await migrate(conns[0]) == []  # idempotent
        tables = {
            r["tablename"] for r in await conns[0].fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        assert tables >= SPEC_TABLES
        indexes = {
            r["indexname"] for r in await conns[0].fetch("SELECT indexname FROM pg_indexes WHERE schemaname='public'")
        }
        assert indexes >= SPEC_INDEXES
    finally:
        for c in conns:
            await c.close()


async def test_schema_enforces_the_spec_checks(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
        bad = [
            "INSERT INTO agents (name, type, version) VALUES ('x1', 'wizard', '1.0.0')",
            "INSERT INTO agents (name, type, version, status) VALUES ('x2', 'worker', '1.0.0', 'asleep')",
            "INSERT INTO workflows (name, version, definition, status) VALUES ('w', '1', '{}', 'live')",
            "INSERT INTO executions (status) VALUES ('paused')",
            "INSERT INTO tasks (name, status, priority) VALUES ('t', 'pending', 11)",
            "INSERT INTO tasks (name, status) VALUES ('t', 'sleeping')",
        ]
        for sql in bad:
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(sql)
        row = await conn.fetchrow(
            "INSERT INTO agents (name, type, version) VALUES ('ok', 'worker', '1.0.0') RETURNING status, capabilities"
        )
        assert row["status"] == "idle" and row["capabilities"] == "[]"
    finally:
        await conn.close()


async def test_an_edited_migration_is_refused(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
        first = load_migrations()[0]
        edited = Migration(first.version, first.name, first.sql + "\n-- edited")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, [edited])
    finally:
        await conn.close()


async def test_capabilities_stored_as_a_string_are_repaired(postgres_url: str) -> None:
    """0012: an agent whose single capability a batched registration stored as a JSON string gets
    it back as a list (and is re-indexed for search); lists are left alone. Its own database: the
    module's has every migration applied already."""
    name = f"test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(postgres_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}")))
    try:
        await migrate(conn, [m for m in load_migrations() if m.version < 12])
        insert = "INSERT INTO agents (name, type, version, capabilities) VALUES ($1, 'worker', '1.0.0', $2::jsonb)"
        await conn.execute(insert, "broken", '"summarize"')
        await conn.execute(insert, "fine", '["a", "b"]')
        await conn.execute("DELETE FROM search_outbox")
        assert 12 in await migrate(conn)
        rows = await conn.fetch("SELECT name, capabilities::text AS c FROM agents ORDER BY name")
        assert [(r["name"], r["c"]) for r in rows] == [("broken", '["summarize"]'), ("fine", '["a", "b"]')]
        reindexed = await conn.fetch("SELECT a.name FROM search_outbox o JOIN agents a ON a.id = o.entity_id")
        assert [r["name"] for r in reindexed] == ["broken"]
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
