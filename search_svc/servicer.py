"""gRPC servicer of ossa.search.v1.SearchService: validate, query the vectors, answer from PostgreSQL.

Every hit is joined with its row in PostgreSQL before it is returned: callers see the entity as it
is now (an agent's live status), and a point whose entity was just deleted is never shown.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from ossa.search.v1 import search_pb2 as pb
from ossa.search.v1 import search_pb2_grpc
from ossa_runtime.errors import FailedPrecondition
from ossa_runtime.messages import agent_from_row, timestamp
from ossa_runtime.messages import workflow_message as workflow_from_row
from ossa_search.chunk import chunk
from ossa_search.stores.base import Filter, Hit, MatchValue
from search_svc import validation
from search_svc.documents import AGENTS, KNOWLEDGE, WORKFLOWS
from search_svc.index import VectorIndex
from search_svc.indexer import Indexer
from search_svc.knowledge import KnowledgeStore, NewDocument
from search_svc.sources import Row, Sources

log = logging.getLogger("ossa.search")
Context = grpc.aio.ServicerContext[Any, Any]


def _where(must: dict[str, MatchValue], ranges: dict[str, tuple[float | None, float | None]] | None = None) -> Filter:
    return Filter(must=must, ranges=ranges or {})


def _joined(hits: Sequence[Hit], rows: Sequence[Row]) -> list[tuple[Row, float]]:
    """(row, score) in the hits' order, leaving out points PostgreSQL no longer has."""
    by_id = {r["id"]: r for r in rows}
    out = []
    for hit in hits:
        row = by_id.get(str(uuid.UUID(hit.id)))
        if row is not None:
            out.append((row, hit.score))
    return out


def _chunk(row: Row) -> pb.KnowledgeChunk:
    message = pb.KnowledgeChunk(
        id=row["id"],
        document_id=row["document_id"],
        chunk_index=row["chunk_index"],
        content=row["content"],
        source=row["source"],
        timestamp=timestamp(row["timestamp"]),
    )
    message.metadata.SetInParent()
    message.metadata.update(row["metadata"] or {})
    return message


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    def __init__(
        self,
        sources: Sources,
        index: VectorIndex,
        indexer: Indexer,
        knowledge: KnowledgeStore,
        snapshots: Path | None = None,
    ) -> None:
        self.sources = sources
        self.index = index
        self.indexer = indexer
        self.knowledge = knowledge
        self.snapshots = snapshots  # where Snapshot writes (None: the store is a Qdrant server)

    async def SearchAgents(self, request: pb.SearchAgentsRequest, context: Context) -> pb.SearchAgentsResponse:
        q = validation.parse_agent_query(request)
        must: dict[str, MatchValue] = {}
        if q.type is not None:
            must["agent_type"] = q.type
        if q.status is not None:  # live status: from PostgreSQL, never from the index
            ids = await self.sources.agent_ids(q.status, q.type)
            if not ids:
                return pb.SearchAgentsResponse()
            must["agent_id"] = ids
        hits = await self.index.query(AGENTS, q.query, limit=q.limit, where=_where(must), with_payload=False)
        rows = await self.sources.agents([h.id for h in hits])
        results = [
            pb.AgentMatch(agent=agent_from_row(row), score=score)
            for row, score in _joined(hits, rows)
            if (q.status is None or row["status"] == q.status) and (q.type is None or row["type"] == q.type)
        ]
        return pb.SearchAgentsResponse(results=results)

    async def SearchWorkflows(self, request: pb.SearchWorkflowsRequest, context: Context) -> pb.SearchWorkflowsResponse:
        q = validation.parse_workflow_query(request)
        must: dict[str, MatchValue] = {}
        if q.status is not None:
            must["status"] = q.status
        if q.tags:
            must["tags"] = q.tags
        hits = await self.index.query(WORKFLOWS, q.query, limit=q.limit, where=_where(must), with_payload=False)
        rows = await self.sources.workflows([h.id for h in hits])
        results = [
            pb.WorkflowMatch(workflow=workflow_from_row(row), score=score)
            for row, score in _joined(hits, rows)
            if q.status is None or row["status"] == q.status
        ]
        return pb.SearchWorkflowsResponse(results=results)

    async def AddKnowledge(self, request: pb.AddKnowledgeRequest, context: Context) -> pb.AddKnowledgeResponse:
        new = validation.parse_new_knowledge(request)
        pieces = chunk(new.content)
        stored = await self.knowledge.add(NewDocument(new.source, new.metadata, new.timestamp, pieces))
        # Index it now (searchable as soon as this returns); a failure leaves the outbox row for a retry.
        indexed = await asyncio.shield(asyncio.ensure_future(self.indexer.index_now(stored.change_id)))
        log.info(
            "knowledge added",
            extra={"metadata": {"document_id": stored.document_id, "chunks": stored.chunk_count, "indexed": indexed}},
        )
        return pb.AddKnowledgeResponse(document_id=stored.document_id, chunk_count=stored.chunk_count, indexed=indexed)

    async def SearchKnowledge(self, request: pb.SearchKnowledgeRequest, context: Context) -> pb.SearchKnowledgeResponse:
        q = validation.parse_knowledge_query(request)
        must: dict[str, MatchValue] = {}
        if q.source is not None:
            must["source"] = q.source
        ranges: dict[str, tuple[float | None, float | None]] = {}
        if q.start is not None or q.end is not None:
            ranges["timestamp"] = (
                q.start.timestamp() if q.start is not None else None,
                q.end.timestamp() if q.end is not None else None,
            )
        hits = await self.index.query(KNOWLEDGE, q.query, limit=q.limit, where=_where(must, ranges), with_payload=False)
        rows = await self.sources.chunks([h.id for h in hits])
        return pb.SearchKnowledgeResponse(
            results=[pb.KnowledgeMatch(chunk=_chunk(row), score=score) for row, score in _joined(hits, rows)]
        )

    async def DeleteKnowledge(self, request: pb.DeleteKnowledgeRequest, context: Context) -> pb.DeleteKnowledgeResponse:
        document_id = validation.parse_document_id(request.document_id)
        change_id = await self.knowledge.delete(document_id)
        await asyncio.shield(asyncio.ensure_future(self.indexer.index_now(change_id)))
        log.info("knowledge deleted", extra={"metadata": {"document_id": document_id}})
        return pb.DeleteKnowledgeResponse()

    async def Snapshot(self, request: pb.SnapshotRequest, context: Context) -> pb.SnapshotResponse:
        if self.snapshots is None:
            raise FailedPrecondition(
                "the vector store is a Qdrant server: `ossa backup` dumps its points through the server instead"
            )
        self.snapshots.mkdir(parents=True, exist_ok=True)
        dest = Path(tempfile.mkdtemp(prefix=datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-"), dir=self.snapshots))
        counts = await self.index.snapshot(dest)
        log.info("vector store snapshot", extra={"metadata": {"directory": str(dest), "points": counts}})
        return pb.SnapshotResponse(directory=str(dest), points=counts)

    async def Reindex(self, request: pb.ReindexRequest, context: Context) -> pb.ReindexResponse:
        counts = await self.indexer.reindex()
        log.info("reindexed", extra={"metadata": counts})
        return pb.ReindexResponse(
            agents=counts.get(AGENTS, 0), workflows=counts.get(WORKFLOWS, 0), knowledge_chunks=counts.get(KNOWLEDGE, 0)
        )
