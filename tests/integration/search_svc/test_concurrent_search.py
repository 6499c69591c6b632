"""Concurrent searches through the real SearchService (gRPC, PostgreSQL, Redis, the local model,
both vector stores) get exactly what the same searches get one at a time, while the micro-batcher
really merges their query embeddings (and qdrant-edge their vector searches)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import pytest

from ossa.search.v1 import search_pb2 as pb
from ossa.search.v1 import search_pb2_grpc
from ossa_runtime.server import ServiceHost
from ossa_runtime.settings import Settings
from ossa_search.embedders.batch import BatchingEmbedder
from ossa_search.embedders.cache import CachedEmbedder
from ossa_search.embedders.factory import load_embedder
from ossa_search.stores.edge import EdgeStore
from ossa_search.stores.factory import open_store
from search_svc.server import build_service
from tests import auth
from tests.integration.search_svc.test_servicer import AGENTS_SPEC, drained, drop_database, insert_agent, new_database

pytestmark = pytest.mark.integration

NOTES = [
    "Failed tasks are retried with exponential backoff, up to five attempts.",
    "Agents send a heartbeat to Redis every ten seconds; three missed beats mark them offline.",
    "Requests without a valid bearer token are rejected with 401 by the gateway.",
    "Task results are written to PostgreSQL and kept for ninety days.",
    "Work goes to the least loaded live agent that has the capability.",
    "Workflow definitions are validated against the JSON schema before they are saved.",
    "After a crash the orchestrator replays its event log from the last checkpoint.",
    "Clients above their rate limit get 429 and a Retry-After header.",
    "Invoices are issued in EUR and USD at the start of each month.",
    "The on-call engineer is paged when memory stays above ninety percent for five minutes.",
]
KNOWLEDGE_QUERIES = [
    "how are failed tasks retried",
    "how often do agents check in",
    "what happens to calls without a token",
    "where do results of tasks end up",
    "who receives the work",
    "what checks a workflow before saving",
    "how does the system recover from a crash",
    "what if a client sends too many requests",
    "which currencies do bills use",
    "who gets woken up when memory runs out",
    "how long are results kept",
    "when is an agent considered offline",
]
AGENT_QUERIES = [
    "convert this letter into French",
    "check my program for errors",
    "give me the gist of this long article",
    "how much did we pay on that bill",
    "will it rain tomorrow",
    "find security holes in a pull request",
]


@dataclass
class Service:
    host: ServiceHost
    stub: search_pb2_grpc.SearchServiceStub
    channel: grpc.aio.Channel
    batcher: BatchingEmbedder
    store: object


@pytest.fixture(scope="module", params=["edge", "memory"])
async def service(
    request: pytest.FixtureRequest, postgres_url: str, module_redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Service]:
    name, url = await new_database(postgres_url)
    settings = Settings.from_env(
        {},
        data_dir=tmp_path_factory.mktemp(f"concurrent-{request.param}"),
        database_url=url,
        redis_url=module_redis_url,
        jwt_secret=auth.TEST_JWT_SECRET,
        qdrant_url=":memory:" if request.param == "memory" else "",
        embed_cache_size=0,  # every search reaches the model: the batcher is what is under test
        search_index_poll_seconds=0.1,
        health_probe_seconds=0.2,
        shutdown_grace_seconds=1.0,
    )
    embedder = load_embedder(settings)
    assert isinstance(embedder, CachedEmbedder) and isinstance(embedder.inner, BatchingEmbedder)
    store = open_store(settings)
    host, port, _ = await build_service(settings, port=0, store=store, embedder=embedder)
    await host.start()
    channel = auth.channel(f"127.0.0.1:{port}")
    stub = search_pb2_grpc.SearchServiceStub(channel)  # type: ignore[no-untyped-call]
    db = await asyncpg.connect(url)
    try:
        for role in AGENTS_SPEC:
            await insert_agent(db, role, "")
        for i, note in enumerate(NOTES):
            await stub.AddKnowledge(pb.AddKnowledgeRequest(content=note, source="runbook" if i % 2 else "wiki"))
        await drained(db)
    finally:
        await db.close()
    yield Service(host, stub, channel, embedder.inner, store)
    await channel.close(None)
    await host.stop()
    await embedder.close()  # type: ignore[attr-defined]
    await drop_database(postgres_url, name)


Answer = list[tuple[str, float]]


async def ask(s: Service, i: int) -> Answer:
    """The i-th search: knowledge queries (every other one filtered by source), then agent queries."""
    if i < len(KNOWLEDGE_QUERIES):
        source = "wiki" if i % 2 else ""
        reply = await s.stub.SearchKnowledge(pb.SearchKnowledgeRequest(query=KNOWLEDGE_QUERIES[i], source=source))
        return [(r.chunk.id, r.score) for r in reply.results]
    agents = await s.stub.SearchAgents(pb.SearchAgentsRequest(query=AGENT_QUERIES[i - len(KNOWLEDGE_QUERIES)]))
    return [(r.agent.id, r.score) for r in agents.results]


def same(a: Answer, b: Answer) -> bool:
    return [x for x, _ in a] == [x for x, _ in b] and all(
        abs(sa - sb) < 1e-5 for (_, sa), (_, sb) in zip(a, b, strict=True)
    )


async def test_concurrent_searches_get_the_same_results_as_sequential_ones(service: Service) -> None:
    n = len(KNOWLEDGE_QUERIES) + len(AGENT_QUERIES)
    sequential = [await ask(service, i) for i in range(n)]
    assert all(sequential), "every search finds something"
    calls_before = service.batcher.calls
    for order in (list(reversed(range(n))), list(range(0, n, 2)) + list(range(1, n, 2))):  # order must not matter
        concurrent = await asyncio.gather(*(ask(service, i) for i in order))
        by_index = dict(zip(order, concurrent, strict=True))
        for i in range(n):
            assert same(by_index[i], sequential[i]), (i, by_index[i], sequential[i])
    # The query embeddings of concurrent searches shared model calls.
    assert service.batcher.calls - calls_before < 2 * n
    if isinstance(service.store, EdgeStore):
        batchers = service.store._searches.values()
        assert sum(b.searches for b in batchers) > sum(b.batches for b in batchers)
