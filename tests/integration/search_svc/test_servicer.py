"""The search service over real gRPC with real PostgreSQL and Redis, against both vector stores
(the embedded qdrant-edge shards in a temp dir and qdrant-client's in-process ":memory:" mode), with
the real local embedding model: ranking, filters, the outbox, reindex, knowledge, bad input."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import numpy as np
import pytest
from google.protobuf import timestamp_pb2

from ossa.orchestrator.v1 import orchestrator_pb2
from ossa.registry.v1 import registry_pb2
from ossa.search.v1 import search_pb2 as pb
from ossa.search.v1 import search_pb2_grpc
from ossa_runtime.server import ServiceHost
from ossa_runtime.settings import Settings
from ossa_search.embedders.base import Embedder
from ossa_search.embedders.factory import load_embedder
from ossa_search.stores.base import Filter, Hit, Point, VectorStore
from ossa_search.stores.factory import open_store
from search_svc.documents import AGENTS, KNOWLEDGE, WORKFLOWS
from search_svc.server import Parts, build_service
from tests import auth

pytestmark = pytest.mark.integration
WAIT_SECONDS = 60.0

# Distinct jobs in plain words; each query below names none of the agent's own words.
AGENTS_SPEC = {
    "translator": ("worker", ["translate"], "Translates documents and messages between English, French and German."),
    "reviewer": ("critic", ["code_review"], "Reviews source code changes and points out bugs and security flaws."),
    "summarizer": ("worker", ["summarize"], "Condenses long reports and articles into a short summary."),
    "invoices": ("integrator", ["extract_invoice"], "Reads invoices and receipts and extracts totals, dates, vendors."),
    "weather": ("monitor", ["forecast"], "Watches weather stations and forecasts rain, wind and temperature."),
}
QUERIES = {
    "convert this letter into French": "translator",
    "check my program for errors": "reviewer",
    "give me the gist of this long article": "summarizer",
    "how much did we pay on that bill": "invoices",
    "will it rain tomorrow": "weather",
}


class FlakyStore:
    """A VectorStore whose writes fail while `failing` is set (searches keep working)."""

    def __init__(self, inner: VectorStore) -> None:
        self.inner = inner
        self.failing = False

    def _check(self) -> None:
        if self.failing:
            raise ConnectionError("vector store unreachable (test)")

    async def open(self) -> None:
        await self.inner.open()

    async def upsert(self, collection: str, points: Sequence[Point]) -> None:
        self._check()
        await self.inner.upsert(collection, points)

    async def delete(self, collection: str, ids: Sequence[str]) -> None:
        self._check()
        await self.inner.delete(collection, ids)

    async def search(
        self,
        collection: str,
        vector: np.ndarray,
        *,
        limit: int,
        filter: Filter | None = None,
        exact: bool = False,
        with_payload: bool = True,
    ) -> list[Hit]:
        return await self.inner.search(
            collection, vector, limit=limit, filter=filter, exact=exact, with_payload=with_payload
        )

    async def count(self, collection: str) -> int:
        return await self.inner.count(collection)

    async def clear(self, collection: str) -> None:
        self._check()
        await self.inner.clear(collection)

    async def snapshot(self, collection: str, dest: Path) -> Path:
        return await self.inner.snapshot(collection, dest)

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class Search:
    host: ServiceHost
    parts: Parts
    store: FlakyStore
    stub: search_pb2_grpc.SearchServiceStub
    channel: grpc.aio.Channel
    db: asyncpg.Connection
    agents: dict[str, str]  # role in AGENTS_SPEC -> agent id


@pytest.fixture(scope="module")
async def embedder() -> AsyncIterator[Embedder]:
    model = load_embedder(Settings.from_env({}))
    yield model
    close = getattr(model, "close", None)
    if close is not None:
        await close()


async def new_database(postgres_url: str) -> tuple[str, str]:
    name = f"test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name, urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))


async def drop_database(postgres_url: str, name: str) -> None:
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def insert_agent(db: asyncpg.Connection, role: str, suffix: str) -> str:
    agent_type, capabilities, description = AGENTS_SPEC[role]
    return str(
        await db.fetchval(
            """INSERT INTO agents (name, type, version, capabilities, metadata)
               VALUES ($1, $2, '1.0.0', $3::jsonb, $4::jsonb) RETURNING id""",
            f"{role}-{suffix}" if suffix else role,  # (the fixture's: plain names, so rankings are reproducible)
            agent_type,
            json.dumps(capabilities),
            json.dumps({"description": description}),
        )
    )


async def drained(db: asyncpg.Connection) -> None:
    """Wait until the indexer has applied every outbox row."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            if not await db.fetchval("SELECT count(*) FROM search_outbox"):
                return
            await asyncio.sleep(0.05)


@pytest.fixture(scope="module", params=["edge", "memory"])
async def search(
    request: pytest.FixtureRequest,
    postgres_url: str,
    module_redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    embedder: Embedder,
) -> AsyncIterator[Search]:
    name, url = await new_database(postgres_url)
    settings = Settings.from_env(
        {},
        data_dir=tmp_path_factory.mktemp(f"search-{request.param}"),
        database_url=url,
        redis_url=module_redis_url,
        jwt_secret=auth.TEST_JWT_SECRET,
        qdrant_url=":memory:" if request.param == "memory" else "",
        search_index_poll_seconds=0.1,
        search_retry_seconds=0.05,
        search_retry_max_seconds=0.2,
        health_probe_seconds=0.2,
        shutdown_grace_seconds=1.0,
    )
    store = FlakyStore(open_store(settings))
    host, port, parts = await build_service(settings, port=0, store=store, embedder=embedder)
    await host.start()
    channel = auth.channel(f"127.0.0.1:{port}")
    db = await asyncpg.connect(url)
    agents = {role: await insert_agent(db, role, "") for role in AGENTS_SPEC}
    await drained(db)
    yield Search(host, parts, store, search_pb2_grpc.SearchServiceStub(channel), channel, db, agents)
    await db.close()
    await channel.close()
    await host.stop()
    await drop_database(postgres_url, name)


async def find_agents(s: Search, query: str, **kwargs: Any) -> list[pb.AgentMatch]:
    reply = await s.stub.SearchAgents(pb.SearchAgentsRequest(query=query, **kwargs))
    return list(reply.results)


def invalid_fields(err: grpc.aio.AioRpcError) -> str:
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    return str(err.details())


# Agents -----------------------------------------------------------------------------------------


async def test_plain_words_query_ranks_the_right_agent_first(search: Search) -> None:
    for query, role in QUERIES.items():
        results = await find_agents(search, query, limit=5)
        assert [r.agent.name.split("-")[0] for r in results][:1] == [role], (query, [r.agent.name for r in results])
        top = results[0]
        assert top.agent.id == search.agents[role] and 0 < top.score <= 1.0001
        assert top.agent.metadata["description"] == AGENTS_SPEC[role][2]  # the agent as PostgreSQL has it
        assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


async def test_type_filter_is_applied_in_the_store(search: Search) -> None:
    results = await find_agents(search, "convert this letter into French", type=registry_pb2.AgentType.critic)
    assert [r.agent.id for r in results] == [search.agents["reviewer"]]


async def test_status_filter_reads_the_live_status(search: Search) -> None:
    busy = search.agents["summarizer"]
    # A heartbeat-style update (status, last_heartbeat) is not an indexing change: no outbox row.
    await search.db.execute("UPDATE agents SET status = 'busy', last_heartbeat = now() WHERE id = $1", busy)
    assert await search.db.fetchval("SELECT count(*) FROM search_outbox") == 0
    try:
        results = await find_agents(search, "will it rain tomorrow", status=registry_pb2.AgentStatus.busy)
        assert [r.agent.id for r in results] == [busy]
        assert results[0].agent.status == registry_pb2.AgentStatus.busy
        assert await find_agents(search, "anything", status=registry_pb2.AgentStatus.offline) == []
        idle = await find_agents(search, "give me the gist of this long article", status=registry_pb2.AgentStatus.idle)
        assert busy not in [r.agent.id for r in idle] and len(idle) == len(AGENTS_SPEC) - 1
    finally:
        await search.db.execute("UPDATE agents SET status = 'idle' WHERE id = $1", busy)


async def test_updating_the_description_reindexes_and_delete_removes(search: Search) -> None:
    agent_id = await insert_agent(search.db, "weather", f"x{secrets.token_hex(3)}")
    await drained(search.db)
    await search.db.execute(
        "UPDATE agents SET metadata = $2::jsonb WHERE id = $1",
        agent_id,
        json.dumps({"description": "Plays chess and explains the best opening moves."}),
    )
    await drained(search.db)
    results = await find_agents(search, "which chess opening should I play", limit=1)
    assert [r.agent.id for r in results] == [agent_id]
    await search.db.execute("DELETE FROM agents WHERE id = $1", agent_id)
    await drained(search.db)
    assert agent_id not in [r.agent.id for r in await find_agents(search, "which chess opening should I play")]
    hits = await search.parts.index.query(AGENTS, "which chess opening should I play", limit=50)
    assert agent_id not in [str(uuid.UUID(h.id)) for h in hits]  # the point itself is gone


# Workflows --------------------------------------------------------------------------------------


async def insert_workflow(db: asyncpg.Connection, name: str, description: str, tags: list[str], steps: int) -> str:
    definition = {"tags": tags, "steps": [{"id": f"s{i}", "capability": f"step_{i}"} for i in range(steps)]}
    return str(
        await db.fetchval(
            "INSERT INTO workflows (name, version, description, definition) VALUES ($1, '1.0.0', $2, $3::jsonb) "
            "RETURNING id",
            name,
            description,
            json.dumps(definition),
        )
    )


PAY_QUERY = "pay the employees their salaries"


async def test_workflows_are_searchable_once_published(search: Search) -> None:
    payroll = await insert_workflow(search.db, "payroll", "Pays employees their monthly salary.", ["finance"], 3)
    onboarding = await insert_workflow(search.db, "onboarding", "Welcomes a new hire: laptop, accounts.", ["hr"], 2)
    await drained(search.db)
    reply = await search.stub.SearchWorkflows(pb.SearchWorkflowsRequest(query=PAY_QUERY))
    assert payroll not in [r.workflow.id for r in reply.results]  # drafts are not indexed
    await search.db.execute(
        "UPDATE workflows SET status = 'published' WHERE id = ANY($1::uuid[])", [payroll, onboarding]
    )
    await drained(search.db)
    reply = await search.stub.SearchWorkflows(pb.SearchWorkflowsRequest(query=PAY_QUERY))
    assert [r.workflow.id for r in reply.results][:1] == [payroll]
    assert reply.results[0].workflow.status == orchestrator_pb2.WorkflowStatus.published
    tagged = await search.stub.SearchWorkflows(pb.SearchWorkflowsRequest(query=PAY_QUERY, tags=["hr"]))
    assert [r.workflow.id for r in tagged.results] == [onboarding]
    await search.db.execute("UPDATE workflows SET status = 'deprecated' WHERE id = $1", onboarding)
    await drained(search.db)
    old = await search.stub.SearchWorkflows(
        pb.SearchWorkflowsRequest(query="new hire", status=orchestrator_pb2.WorkflowStatus.deprecated)
    )
    assert [r.workflow.id for r in old.results] == [onboarding]
    hits = await search.parts.index.query(WORKFLOWS, PAY_QUERY, limit=1)
    assert hits[0].payload["complexity"] == 3.0 and hits[0].payload["tags"] == ["finance"]


# Reindex ----------------------------------------------------------------------------------------


async def snapshot_results(s: Search) -> list[list[tuple[str, float]]]:
    out = []
    for query in QUERIES:
        out.append([(r.agent.id, round(r.score, 4)) for r in await find_agents(s, query, limit=5)])
    return out


async def test_reindex_after_wiping_the_store_restores_identical_results(search: Search) -> None:
    await drained(search.db)
    before = await snapshot_results(search)
    for collection in (AGENTS, WORKFLOWS, KNOWLEDGE):
        await search.parts.store.clear(collection)
    assert await find_agents(search, "will it rain tomorrow") == []
    reply = await search.stub.Reindex(pb.ReindexRequest())
    assert reply.agents == await search.db.fetchval("SELECT count(*) FROM agents")
    assert reply.workflows == await search.db.fetchval("SELECT count(*) FROM workflows WHERE status <> 'draft'")
    assert reply.knowledge_chunks == await search.db.fetchval("SELECT count(*) FROM knowledge_chunks")
    assert await snapshot_results(search) == before


async def test_reindex_needs_an_admin(search: Search) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await search.stub.Reindex(pb.ReindexRequest(), metadata=auth.metadata(auth.token("operator")))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    viewer = await search.stub.SearchAgents(
        pb.SearchAgentsRequest(query="will it rain tomorrow", limit=1), metadata=auth.metadata(auth.token("viewer"))
    )
    assert [r.agent.id for r in viewer.results] == [search.agents["weather"]]


# Knowledge --------------------------------------------------------------------------------------


def ts(value: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value)
    return out


LONG_TEXT = "\n\n".join(
    f"Section {i}. " + " ".join(f"The deployment step {i}.{j} restarts service number {j}." for j in range(12))
    for i in range(8)
)


async def test_knowledge_add_search_filters_and_delete(search: Search) -> None:
    now = datetime.now(UTC)
    source = f"runbook-{secrets.token_hex(3)}"
    call = search.stub.AddKnowledge(
        pb.AddKnowledgeRequest(
            content="To rotate the database password, run the vault rotate command and restart the API pods.",
            source=source,
            metadata={"team": "platform"},
            timestamp=ts(now - timedelta(days=10)),
        )
    )
    added = await call
    assert "x-http-code" not in dict(await call.initial_metadata())  # the REST status comes from the route
    assert added.chunk_count == 1 and added.indexed
    recent = await search.stub.AddKnowledge(
        pb.AddKnowledgeRequest(content="Holiday calendar: the office is closed on 25 December.", source=source)
    )
    other = await search.stub.AddKnowledge(
        pb.AddKnowledgeRequest(content="To rotate the database password, ask the DBA team.", source="wiki")
    )
    long = await search.stub.AddKnowledge(pb.AddKnowledgeRequest(content=LONG_TEXT, source=source))
    assert long.chunk_count > 1 and long.indexed

    query = "how do I change the DB credentials"
    found = await search.stub.SearchKnowledge(pb.SearchKnowledgeRequest(query=query, source=source, limit=3))
    top = found.results[0].chunk
    assert (top.document_id, top.source, top.chunk_index) == (added.document_id, source, 0)
    assert top.metadata["team"] == "platform" and top.content.startswith("To rotate")
    assert other.document_id not in [r.chunk.document_id for r in found.results]

    windowed = await search.stub.SearchKnowledge(
        pb.SearchKnowledgeRequest(query=query, source=source, **{"from": ts(now - timedelta(days=1))})
    )
    assert added.document_id not in [r.chunk.document_id for r in windowed.results]
    assert recent.document_id in [r.chunk.document_id for r in windowed.results]
    old = await search.stub.SearchKnowledge(pb.SearchKnowledgeRequest(query=query, to=ts(now - timedelta(days=5))))
    assert [r.chunk.document_id for r in old.results] == [added.document_id]

    call = search.stub.DeleteKnowledge(pb.DeleteKnowledgeRequest(document_id=long.document_id))
    await call
    assert "x-http-code" not in dict(await call.initial_metadata())  # the REST status comes from the route
    await drained(search.db)
    hits = await search.parts.index.query(KNOWLEDGE, "deployment step restarts service", limit=50)
    assert long.document_id not in {h.payload["document_id"] for h in hits}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await search.stub.DeleteKnowledge(pb.DeleteKnowledgeRequest(document_id=long.document_id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


# Bad input --------------------------------------------------------------------------------------

DRAFT = orchestrator_pb2.WorkflowStatus.draft
EPOCH_10, EPOCH_20 = timestamp_pb2.Timestamp(seconds=10), timestamp_pb2.Timestamp(seconds=20)


@pytest.mark.parametrize(
    ("method", "request_", "field"),
    [
        ("SearchAgents", pb.SearchAgentsRequest(query="  "), "query"),
        ("SearchAgents", pb.SearchAgentsRequest(query="x" * 1001), "query"),
        ("SearchAgents", pb.SearchAgentsRequest(query="ok", limit=101), "limit"),
        ("SearchAgents", pb.SearchAgentsRequest(query="ok", limit=-1), "limit"),
        ("SearchAgents", pb.SearchAgentsRequest(query="ok", type=99), "type"),  # type: ignore[arg-type]
        ("SearchAgents", pb.SearchAgentsRequest(query="ok", status=42), "status"),  # type: ignore[arg-type]
        ("SearchWorkflows", pb.SearchWorkflowsRequest(query="ok", status=DRAFT), "status"),
        ("SearchWorkflows", pb.SearchWorkflowsRequest(query="ok", tags=[""]), "tags[0]"),
        ("AddKnowledge", pb.AddKnowledgeRequest(content="", source="s"), "content"),
        ("AddKnowledge", pb.AddKnowledgeRequest(content="text", source=""), "source"),
        ("AddKnowledge", pb.AddKnowledgeRequest(content="a\x00b", source="s"), "content"),
        ("SearchKnowledge", pb.SearchKnowledgeRequest(query="ok", to=EPOCH_10, **{"from": EPOCH_20}), "from"),
        ("DeleteKnowledge", pb.DeleteKnowledgeRequest(document_id="nope"), "document_id"),
    ],
)  # fmt: skip
async def test_bad_input_is_invalid_argument_naming_the_field(
    search: Search, method: str, request_: Any, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(search.stub, method)(request_)
    assert f"{field}:" in invalid_fields(err.value)


# Failures ---------------------------------------------------------------------------------------


async def test_a_failing_vector_store_leaves_the_outbox_row_for_retry(search: Search) -> None:
    search.store.failing = True
    try:
        agent_id = await insert_agent(search.db, "translator", f"flaky{secrets.token_hex(3)}")
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                row = await search.db.fetchrow(
                    "SELECT attempts, last_error FROM search_outbox WHERE entity_id = $1", agent_id
                )
                assert row is not None  # never lost
                if row["attempts"] >= 2:
                    break
                await asyncio.sleep(0.05)
        assert "unreachable" in row["last_error"]
        added = await search.stub.AddKnowledge(
            pb.AddKnowledgeRequest(content="The flaky store note about sourdough starters.", source="flaky")
        )
        assert not added.indexed  # stored in PostgreSQL; indexed by a retry
        results = await find_agents(search, "convert this letter into French", limit=10)
        assert agent_id not in [r.agent.id for r in results]
    finally:
        search.store.failing = False
    await drained(search.db)
    results = await find_agents(search, "convert this letter into French", limit=10)
    assert agent_id in [r.agent.id for r in results]
    found = await search.stub.SearchKnowledge(pb.SearchKnowledgeRequest(query="sourdough", source="flaky"))
    assert [r.chunk.document_id for r in found.results] == [added.document_id]
    await search.db.execute("DELETE FROM agents WHERE id = $1", agent_id)
    await drained(search.db)
