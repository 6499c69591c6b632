"""Assemble the search service: PostgreSQL, Redis, the embedder, the vector store, the indexer, gRPC.

Exactly one search process runs: it owns the vector store (an embedded qdrant-edge shard can only
be opened by one process) and serves it to the others, e.g. the orchestrator's capability routing
calls SearchAgents.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ossa.search.v1 import search_pb2, search_pb2_grpc
from ossa_runtime import metrics, tls
from ossa_runtime.auth.interceptor import AuthInterceptor
from ossa_runtime.db import create_pool
from ossa_runtime.health import datastore_watch
from ossa_runtime.ratelimit import RateLimitInterceptor
from ossa_runtime.redis import create_redis
from ossa_runtime.server import ServiceHost, run_main
from ossa_runtime.settings import Settings
from ossa_search.embedders.base import Embedder
from ossa_search.embedders.factory import load_embedder
from ossa_search.stores.base import VectorStore
from ossa_search.stores.factory import open_store
from search_svc.index import VectorIndex
from search_svc.indexer import Indexer
from search_svc.knowledge import KnowledgeStore
from search_svc.outbox import Outbox
from search_svc.servicer import SearchServicer
from search_svc.sources import Sources

SERVICE_NAME = search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name


@dataclass(frozen=True)
class Parts:
    """The pieces behind the servicer (tests reach in through these)."""

    store: VectorStore
    index: VectorIndex
    indexer: Indexer
    outbox: Outbox


def snapshot_dir(settings: Settings) -> Path | None:
    """Where Snapshot copies the embedded shards (None with a Qdrant server: nothing local to copy)."""
    return None if settings.qdrant_url else settings.data_dir / "qdrant-snapshots"


async def build_server(settings: Settings, port: int | None = None) -> tuple[ServiceHost, int]:
    """Connect to PostgreSQL (migrating it) and Redis, open the vector store, bind the port.

    The returned host is not started yet: `await host.start()` (tests) or `await host.serve()`.
    """
    host, bound, _ = await build_service(settings, port)
    return host, bound


async def build_service(
    settings: Settings,
    port: int | None = None,
    *,
    store: VectorStore | None = None,
    embedder: Embedder | None = None,
) -> tuple[ServiceHost, int, Parts]:
    """`build_server`, also returning the parts; tests may pass their own store or embedder."""
    auth = AuthInterceptor(settings)  # first: a missing JWT key fails before anything is opened
    owned = embedder is None  # closed with the service (a test's own embedder is the test's)
    embedder = embedder or load_embedder(settings)
    store = store or open_store(settings)
    try:
        pool = await create_pool(settings, service="search")
    except BaseException:
        await _close_embedder(embedder, owned)
        raise
    redis = create_redis(settings)
    try:
        await store.open()
    except BaseException:
        await redis.aclose()
        await pool.close()
        await _close_embedder(embedder, owned)
        raise
    auth.attach(redis, pool)
    sources = Sources(pool)
    outbox = Outbox(pool, settings.search_retry_seconds, settings.search_retry_max_seconds)
    index = VectorIndex(store, embedder)
    indexer = Indexer(
        sources, outbox, index, poll_seconds=settings.search_index_poll_seconds, batch=settings.search_index_batch
    )
    host = ServiceHost(
        "search",
        auth=auth,
        ratelimit=RateLimitInterceptor(settings, redis),
        grace_seconds=settings.shutdown_grace_seconds,
    )
    host.add_service(
        SERVICE_NAME,
        search_pb2_grpc.add_SearchServiceServicer_to_server,
        SearchServicer(sources, index, indexer, KnowledgeStore(pool), snapshot_dir(settings)),
    )

    async def sample_backlog() -> dict[str, float]:
        return {metrics.SEARCH_INDEX_BACKLOG: await indexer.backlog()}

    host.metrics.add_gauges(metrics.SampledGauges([metrics.SEARCH_INDEX_BACKLOG], sample_backlog))
    watch = datastore_watch(host.set_serving, pool, redis, settings)

    async def close() -> None:
        await watch.job.stop()
        await indexer.stop()
        await store.close()
        await _close_embedder(embedder, owned)
        await redis.aclose()
        await pool.close()

    try:
        bound = host.bind(
            settings.host, settings.search_port if port is None else port, tls.server_credentials(settings)
        )
    except BaseException:
        await close()
        raise

    async def start_jobs() -> None:
        indexer.start()
        watch.job.start()

    host.on_start(start_jobs)
    host.on_stop(close)
    return host, bound, Parts(store, index, indexer, outbox)


async def _close_embedder(embedder: Embedder, owned: bool) -> None:
    close = getattr(embedder, "close", None)  # the local model's thread, an HTTP client
    if owned and close is not None:
        await close()


def main() -> int:
    return run_main("search", build_server)


__all__ = ["SERVICE_NAME", "Parts", "build_server", "build_service", "main"]
