"""Workflows in PostgreSQL: create drafts, list, publish, deprecate."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg

from orchestrator_svc.definition import Definition, parse_definition
from ossa_runtime.errors import AlreadyExists, FailedPrecondition, NotFound

Row: TypeAlias = Any  # asyncpg.Record
COLUMNS = "id::text AS id, name, version, description, definition, status, created_at, updated_at"
# Allowed status changes: target -> statuses it may come from (the target itself: idempotent).
TRANSITIONS = {"published": ("draft", "published"), "deprecated": ("draft", "published", "deprecated")}


class WorkflowStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._definitions: dict[str, Definition] = {}
        # Workflows seen published, by id and by (name, version): their definition never changes again.
        # Whether one is still published when a run starts is checked by the start's own statement.
        self._published: dict[str, Row] = {}
        self._by_name: dict[tuple[str, str], str] = {}

    async def create(self, name: str, version: str, description: str, definition: dict[str, Any]) -> Row:
        try:
            row: Row = await self.pool.fetchrow(
                f"""INSERT INTO workflows (name, version, description, definition)
                    VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}""",
                name, version, description, definition,
            )  # fmt: skip
        except asyncpg.UniqueViolationError:
            raise AlreadyExists(f"workflow {name!r} version {version!r} already exists") from None
        return row

    async def get(self, workflow_id: str) -> Row:
        row: Row | None = await self.pool.fetchrow(f"SELECT {COLUMNS} FROM workflows WHERE id = $1", workflow_id)
        if row is None:
            raise NotFound(f"workflow {workflow_id} not found")
        return row

    async def find(self, name: str, version: str) -> Row:
        row: Row | None = await self.pool.fetchrow(
            f"SELECT {COLUMNS} FROM workflows WHERE name = $1 AND version = $2", name, version
        )
        if row is None:
            raise NotFound(f"workflow {name!r} version {version!r} not found")
        return row

    async def query(self, status: str | None, name: str | None, limit: int, offset: int) -> list[Row]:
        rows: list[Row] = await self.pool.fetch(
            f"""SELECT {COLUMNS} FROM workflows
                 WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR name = $2)
                 ORDER BY name, created_at, id LIMIT $3 OFFSET $4""",
            status, name, limit, offset,
        )  # fmt: skip
        return rows

    async def set_status(self, workflow_id: str, target: str) -> Row:
        allowed = TRANSITIONS[target]
        row: Row | None = await self.pool.fetchrow(
            f"""UPDATE workflows SET status = $2::text,
                       updated_at = CASE WHEN status = $2::text THEN updated_at ELSE CURRENT_TIMESTAMP END
                 WHERE id = $1 AND status = ANY($3::text[]) RETURNING {COLUMNS}""",
            workflow_id, target, list(allowed),
        )  # fmt: skip
        if row is None:
            current = await self.get(workflow_id)
            raise FailedPrecondition(f"workflow {workflow_id} is {current['status']} and cannot become {target}")
        if target != "published":
            self._published.pop(workflow_id, None)
        return row

    async def runnable(self, workflow_id: str | None, name: str | None, version: str | None) -> Row:
        """The workflow to start, by id or by name and version, from the cache once seen published."""
        if workflow_id is None:
            assert name is not None and version is not None
            workflow_id = self._by_name.get((name, version))
            if workflow_id is None:
                row = await self.find(name, version)
                return self._remember(row)
        cached = self._published.get(workflow_id)
        return cached if cached is not None else self._remember(await self.get(workflow_id))

    def _remember(self, row: Row) -> Row:
        if row["status"] == "published":
            self._published[row["id"]] = row
            self._by_name[(row["name"], row["version"])] = row["id"]
        return row

    def cached(self, workflow_id: str) -> Definition | None:
        return self._definitions.get(workflow_id)

    async def definition_for(self, conn: asyncpg.Connection, workflow_id: str) -> Definition:
        """The parsed definition of a workflow that has runs (so it is immutable): cached, else read on `conn`."""
        cached = self._definitions.get(workflow_id)
        if cached is not None:
            return cached
        raw = await conn.fetchval("SELECT definition FROM workflows WHERE id = $1", workflow_id)
        return self.definition(workflow_id, raw)

    def definition(self, workflow_id: str, raw: dict[str, Any]) -> Definition:
        """The parsed definition of a published workflow (immutable, so cached)."""
        cached = self._definitions.get(workflow_id)
        if cached is None:
            cached = self._definitions[workflow_id] = parse_definition(raw)
        return cached
