"""Search through the real SearchService over gRPC (issue 15 point 4, the platform's figure).

    python benchmarks/bench_search_grpc.py --start            # start a platform (`ossa up`) just for this run
    python benchmarks/bench_search_grpc.py --search 127.0.0.1:3014 --data-dir ~/.local/share/ossa

Adds --docs generated knowledge documents with AddKnowledge (each embedded by the service), then
calls SearchKnowledge directly on the search service's port (no Envoy): one request in flight for
the latency rows, --concurrency in flight for the throughput rows, with (a) distinct queries, every
one a cache miss, so the query is embedded (micro-batched) in the service, and (b) 200 popular
queries asked again (the service's query-embedding cache answers them). Each search is embedded (or
found in the cache), searched in the vector store, and joined with its PostgreSQL rows.
Ceilings of the same run: grpc.health.v1 Check on the same server with as many in flight (the
trivial unary call), and the embedding model's queries/s on all threads (in this process).
The load generator is one Python process on the same 2 cores; the collection is small (vector
search cost at 100k points is measured in-process by bench_search.py). Backend: whatever the
platform runs (by default the embedded qdrant-edge shards).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import auth
from benchmarks.bench_search import QUESTIONS, document
from benchmarks.report import Result, machine_note, print_table
from benchmarks.search_ceilings import Line, model_ceiling, print_summary
from ossa.search.v1 import search_pb2 as pb
from ossa.search.v1 import search_pb2_grpc
from ossa_runtime.auth.client import bearer_interceptors

TARGETS = {"SearchKnowledge": "p50/p95/p99 25/60/120 ms; 200 searches/s with embedding"}


async def latency(operation: str, path: str, n: int, call: Callable[[int], Awaitable[object]]) -> Result:
    samples = []
    started = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - t)
    return Result(operation, path, samples, time.perf_counter() - started)


async def load(
    operation: str, path: str, concurrency: int, duration: float, call: Callable[[int], Awaitable[object]]
) -> Result:
    samples: list[float] = []
    errors = 0
    counter = iter(range(10**9))
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            try:
                await call(next(counter))
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            samples.append(time.perf_counter() - t)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(operation, f"{path}, {concurrency} in flight", samples, time.perf_counter() - started, errors)


async def run(args: argparse.Namespace, token: str) -> int:
    channel = grpc.aio.insecure_channel(args.search, interceptors=bearer_interceptors(token))
    stub = search_pb2_grpc.SearchServiceStub(channel)  # type: ignore[no-untyped-call]
    health = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]
    rng = random.Random(args.seed)
    print(f"machine before: {machine_note()}")
    started = time.perf_counter()
    for i in range(args.docs):
        await stub.AddKnowledge(pb.AddKnowledgeRequest(content=document(rng, i), source=rng.choice(["wiki", "ticket"])))
    print(f"AddKnowledge x {args.docs}: {time.perf_counter() - started:.1f} s (each embedded by the service)")
    popular = [f"{q} ({k})" for q in QUESTIONS for k in range(20)]
    # Distinct texts shaped like bench_search.py's ("... (variant N)", ~17 tokens), N unique to this
    # run so a long-running service's cache cannot answer them. (Until 2026-12-05 the suffix was
    # "#<epoch seconds>-<i>", ~22 tokens: ~5 ms more model time per query than the in-process rows.)
    first = random.Random().randrange(100, 1000) * 1000  # 6 digits; a run asks fewer than 1,000

    fresh = itertools.count(first)  # never a number already asked: the service caches what it embedded

    async def distinct(_: int) -> None:
        k = next(fresh)
        text = f"{QUESTIONS[k % 10]} (variant {k})"
        await stub.SearchKnowledge(pb.SearchKnowledgeRequest(query=text, limit=10))

    async def repeated(i: int) -> None:
        await stub.SearchKnowledge(pb.SearchKnowledgeRequest(query=popular[(i * 7919) % len(popular)], limit=10))

    async def check(i: int) -> None:
        await health.Check(health_pb2.HealthCheckRequest(service=""))

    for i in range(len(popular)):  # warm the service's cache with the popular queries
        await repeated(i)
    rows = [
        await latency("SearchKnowledge", "distinct query (embedded), 1 in flight", args.n, distinct),
        await latency("SearchKnowledge", "repeated query (cache), 1 in flight", args.n, repeated),
    ]
    c, d = args.concurrency, args.duration
    ceiling = await load("Health Check", "trivial unary, same server", c, d, check)
    rows.append(await load("SearchKnowledge", "distinct query (embedded)", c, d, distinct))
    # The distinct row's ~1,000 queries pushed the popular ones out of the service's LRU cache
    # (OSSA_EMBED_CACHE_SIZE 1024): ask them once more so this row measures what it names (until
    # 2026-12-05 its first ~1.3 s re-embedded them: p99 155-161 ms).
    for i in range(len(popular)):
        await repeated(i)
    rows += [await load("SearchKnowledge", "repeated query (cache)", c, d, repeated), ceiling]
    await channel.close(None)
    # The model's ceiling on texts shaped like the distinct row's: a query's length decides its model time
    # (until 2026-12-05 "<question> @<i>", a few tokens shorter, so the row could measure above its ceiling).
    shaped = [f"{QUESTIONS[i % 10]} (variant {first - 1000 + i})" for i in range(128)]
    model = model_ceiling(shaped, args.embed_threads, args.embed_batch)
    print_table("SearchKnowledge over gRPC (direct to the search service)", rows, TARGETS, rate="search/s")
    summary = [
        Line("searches/s incl. query embedding, distinct queries", 200, rows[2].rate, model, "model queries/s"),
        Line("searches/s, repeated queries (cache)", 200, rows[3].rate, ceiling.rate, "trivial unary calls/s"),
        # No model in a repeated query: the vector search, the PostgreSQL join and the call, against the
        # seed's vector-only target (bench_search.py measures the vector search alone, in-process).
        Line("the same against the vector-only target", 1000, rows[3].rate, ceiling.rate, "trivial unary calls/s"),
        Line("p50 ms, distinct query, 1 in flight", 25, rows[0].pct(0.5), lower_is_better=True),
        Line("p95 ms, distinct query, 1 in flight", 60, rows[0].pct(0.95), lower_is_better=True),
        Line("p99 ms, distinct query, 1 in flight", 120, rows[0].pct(0.99), lower_is_better=True),
        Line("p50 ms, repeated query, 1 in flight", 25, rows[1].pct(0.5), lower_is_better=True),
    ]
    print_summary(f"Summary: SearchService over gRPC, {args.docs}+ knowledge documents", summary)
    print(f"\nmachine after: {machine_note()}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", action="store_true", help="start a platform (`ossa up`) for this run")
    parser.add_argument("--search", default="127.0.0.1:3014", help="the search service's gRPC address")
    parser.add_argument("--docs", type=int, default=200, help="knowledge documents added first")
    parser.add_argument("-n", type=int, default=200, help="searches per latency row")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per throughput row")
    parser.add_argument("--embed-threads", type=int, default=2, help="for the model ceiling (the service's setting)")
    parser.add_argument("--embed-batch", type=int, default=8, help="for the model ceiling (the service's setting)")
    parser.add_argument("--seed", type=int, default=7)
    auth.add_arguments(parser)
    args = parser.parse_args()
    platform = None
    if args.start:
        from tests.e2e.platform import make_platform

        platform = make_platform(Path(tempfile.mkdtemp(prefix="ossa-bench-")) / "data", {"OSSA_LOG_LEVEL": "warning"})
        platform.start()
        args.search = f"127.0.0.1:{platform.port('search')}"
    token = auth.use_token(args, platform.data_dir if platform is not None else None)
    try:
        return asyncio.run(run(args, token))
    finally:
        if platform is not None:
            platform.stop()


if __name__ == "__main__":
    raise SystemExit(main())
