"""Reading the system of record: agents, workflows and knowledge chunks as PostgreSQL has them now."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeAlias

import asyncpg

from search_svc.documents import AGENTS, INDEXED_WORKFLOW_STATUSES, KNOWLEDGE, WORKFLOWS

Row: TypeAlias = Any  # asyncpg.Record
AGENT_COLUMNS = (
    "id::text AS id, name, type, version, status, capabilities, config, metadata, "
    "created_at, updated_at, last_heartbeat"
)
WORKFLOW_COLUMNS = "id::text AS id, name, version, description, definition, status, created_at, updated_at"
CHUNK_COLUMNS = (
    "c.id::text AS id, c.document_id::text AS document_id, c.chunk_index, c.content, c.source, c.metadata, d.timestamp"
)
_TABLES = {AGENTS: "agents", WORKFLOWS: "workflows", KNOWLEDGE: "knowledge_chunks"}
_ALL = {
    AGENTS: f"SELECT {AGENT_COLUMNS} FROM agents WHERE id > $1::uuid ORDER BY id LIMIT $2",
    WORKFLOWS: f"""SELECT {WORKFLOW_COLUMNS} FROM workflows
                   WHERE status = ANY($3::text[]) AND id > $1::uuid ORDER BY id LIMIT $2""",
    KNOWLEDGE: f"""SELECT {CHUNK_COLUMNS} FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id
                   WHERE c.id > $1::uuid ORDER BY c.id LIMIT $2""",
}
_MIN_UUID = "00000000-0000-0000-0000-000000000000"


class Sources:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def agents(self, ids: Sequence[str]) -> list[Row]:
        rows: list[Row] = await self.pool.fetch(
            f"SELECT {AGENT_COLUMNS} FROM agents WHERE id = ANY($1::uuid[])", list(ids)
        )
        return rows

    async def agent_ids(self, status: str, agent_type: str | None) -> list[str]:
        """Agents in `status` now (and of `agent_type`, if given)."""
        rows = await self.pool.fetch(
            "SELECT id::text AS id FROM agents WHERE status = $1 AND ($2::text IS NULL OR type = $2)",
            status,
            agent_type,
        )
        return [r["id"] for r in rows]

    async def workflows(self, ids: Sequence[str]) -> list[Row]:
        """The searchable ones among `ids` (published or deprecated)."""
        rows: list[Row] = await self.pool.fetch(
            f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = ANY($1::uuid[]) AND status = ANY($2::text[])",
            list(ids),
            list(INDEXED_WORKFLOW_STATUSES),
        )
        return rows

    async def chunks_of(self, document_ids: Sequence[str]) -> list[Row]:
        rows: list[Row] = await self.pool.fetch(
            f"""SELECT {CHUNK_COLUMNS} FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id
                WHERE c.document_id = ANY($1::uuid[]) ORDER BY c.document_id, c.chunk_index""",
            list(document_ids),
        )
        return rows

    async def chunks(self, ids: Sequence[str]) -> list[Row]:
        rows: list[Row] = await self.pool.fetch(
            f"""SELECT {CHUNK_COLUMNS} FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id
                WHERE c.id = ANY($1::uuid[])""",
            list(ids),
        )
        return rows

    async def has_rows(self, collection: str) -> bool:
        if collection == WORKFLOWS:
            query = "SELECT EXISTS (SELECT 1 FROM workflows WHERE status = ANY($1::text[]))"
            return bool(await self.pool.fetchval(query, list(INDEXED_WORKFLOW_STATUSES)))
        return bool(await self.pool.fetchval(f"SELECT EXISTS (SELECT 1 FROM {_TABLES[collection]})"))

    async def scan(self, collection: str, batch: int) -> AsyncIterator[list[Row]]:
        """Every row a collection is built from, in batches (keyset pagination by id)."""
        after = _MIN_UUID
        while True:
            args: list[Any] = [after, batch]
            if collection == WORKFLOWS:
                args.append(list(INDEXED_WORKFLOW_STATUSES))
            rows: list[Row] = await self.pool.fetch(_ALL[collection], *args)
            if not rows:
                return
            yield rows
            after = rows[-1]["id"]
