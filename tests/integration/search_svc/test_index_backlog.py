"""A burst of registrations through the real registry (gRPC, PostgreSQL, Redis) is all indexed by
the real search service (local embedding model, qdrant-edge shards): the backlog gauge on its
/metrics goes up with the burst and back to 0, and then every agent of the burst is searchable."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ossa.registry.v1 import registry_pb2 as rpb
from ossa.registry.v1 import registry_pb2_grpc
from ossa.search.v1 import search_pb2 as pb
from ossa.search.v1 import search_pb2_grpc
from ossa_runtime.metrics import SEARCH_INDEX_BACKLOG
from ossa_runtime.server import ServiceHost
from ossa_runtime.settings import Settings
from registry_svc.server import build_server as build_registry
from search_svc.documents import AGENTS
from search_svc.server import Parts, build_service
from tests import auth
from tests.prom import parse, scrape, value

pytestmark = pytest.mark.integration
BURST = 100
WAIT_SECONDS = 120.0


@dataclass
class Stack:
    registry: ServiceHost
    registry_address: str
    search: ServiceHost
    search_address: str
    parts: Parts


@pytest.fixture(scope="module")
async def stack(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    tuned = settings.replace(data_dir=Path(tmp_path_factory.mktemp("backlog")), search_index_poll_seconds=0.1)
    registry, registry_port = await build_registry(tuned, port=0)
    await registry.start()
    search, search_port, parts = await build_service(tuned, port=0)
    search.metrics.listen("127.0.0.1", 0)
    await search.start()
    yield Stack(registry, f"127.0.0.1:{registry_port}", search, f"127.0.0.1:{search_port}", parts)
    await search.stop()
    await registry.stop()


async def backlog_gauge(stack: Stack) -> float:
    assert stack.search.metrics.port is not None
    return value(parse(await scrape(stack.search.metrics.port)), SEARCH_INDEX_BACKLOG)


async def test_a_burst_of_registrations_is_indexed_and_the_backlog_gauge_returns_to_zero(stack: Stack) -> None:
    assert await backlog_gauge(stack) == 0
    await stack.parts.indexer.stop()  # hold indexing, so the burst's backlog is seen whole
    tag = secrets.token_hex(4)
    async with auth.channel(stack.registry_address) as channel:
        registry = registry_pb2_grpc.AgentRegistryServiceStub(channel)
        replies = await asyncio.gather(
            *(
                registry.CreateAgent(
                    rpb.CreateAgentRequest(
                        name=f"burst-{tag}-{i}", type=rpb.AgentType.worker, version="1.0.0", capabilities=["burst"]
                    )
                )
                for i in range(BURST)
            )
        )
    registered = {r.agent.id for r in replies}
    assert len(registered) == BURST
    assert await backlog_gauge(stack) == BURST  # every registration queued, none indexed yet

    stack.parts.indexer.start()
    seen = []
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            seen.append(await backlog_gauge(stack))
            if seen[-1] == 0:
                break
            await asyncio.sleep(0.05)
    assert seen[-1] == 0 and all(b <= a for a, b in itertools.pairwise(seen))  # drains, never grows
    assert await stack.parts.store.count(AGENTS) == BURST

    async with auth.channel(stack.search_address) as channel:
        search = search_pb2_grpc.SearchServiceStub(channel)
        found = await search.SearchAgents(pb.SearchAgentsRequest(query=f"burst {tag}", limit=BURST))
    assert {m.agent.id for m in found.results} == registered
    assert stack.parts.indexer.background.texts >= BURST  # embedded on the low-priority threads
