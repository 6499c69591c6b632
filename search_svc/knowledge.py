"""The knowledge base in PostgreSQL: documents and their chunks (the system of record)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ossa_runtime.errors import NotFound
from search_svc.documents import chunk_id
from search_svc.outbox import CLAIM_SECONDS


@dataclass(frozen=True)
class NewDocument:
    source: str
    metadata: dict[str, Any]
    timestamp: datetime
    chunks: Sequence[str]


@dataclass(frozen=True)
class Stored:
    document_id: str
    chunk_count: int
    change_id: int  # the search_outbox row its trigger wrote


async def _hold(conn: asyncpg.Connection, change_id: int) -> None:
    """Keep the indexer loop off the trigger's outbox row: this request indexes it (Indexer.index_now);
    should the process die first, the loop takes it once the claim expires."""
    await conn.execute(
        "UPDATE search_outbox SET available_at = clock_timestamp() + make_interval(secs => $2) WHERE id = $1",
        change_id,
        CLAIM_SECONDS,
    )


class KnowledgeStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def add(self, doc: NewDocument) -> Stored:
        document_id = str(uuid.uuid4())
        rows = [
            (chunk_id(document_id, i), document_id, i, text, doc.source, doc.metadata)
            for i, text in enumerate(doc.chunks)
        ]
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO knowledge_documents (id, source, metadata, chunk_count, timestamp)
                   VALUES ($1, $2, $3, $4, $5)""",
                document_id, doc.source, doc.metadata, len(rows), doc.timestamp,
            )  # fmt: skip
            await conn.executemany(
                """INSERT INTO knowledge_chunks (id, document_id, chunk_index, content, source, metadata)
                   VALUES ($1, $2, $3, $4, $5, $6)""",
                rows,
            )
            change_id = await conn.fetchval(
                "SELECT max(id) FROM search_outbox WHERE kind = 'knowledge' AND entity_id = $1", document_id
            )
            await _hold(conn, change_id)
        return Stored(document_id, len(rows), int(change_id))

    async def delete(self, document_id: str) -> int:
        """Remove a document and its chunks; returns the outbox row that deletes its points."""
        async with self.pool.acquire() as conn, conn.transaction():
            deleted = await conn.fetchval("DELETE FROM knowledge_documents WHERE id = $1 RETURNING id", document_id)
            if deleted is None:
                raise NotFound(f"knowledge document {document_id} not found")
            change_id = await conn.fetchval(
                "SELECT max(id) FROM search_outbox WHERE kind = 'knowledge' AND entity_id = $1 AND op = 'delete'",
                document_id,
            )
            await _hold(conn, change_id)
        return int(change_id)
