"""Ceilings for bench_search.py, measured in the same run, and its target/measured/ceiling summary.

- The store's: raw qdrant-edge searches in one thread, no asyncio, no gRPC (`shard.query` one at a
  time, and `shard.query_batch` of 32): what one process can do at most, since the engine holds the
  GIL during a search.
- The model's: the local embedding model's texts/s with `threads` threads each embedding batches of
  `batch` queries, no asyncio: what the embedding path can do at most on this machine.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import qdrant_edge as qe

from ossa_search.embedders.local import _encode, _model
from ossa_search.stores.edge import EdgeStore
from ossa_search.stores.edge_convert import search_params


def store_ceiling(store: EdgeStore, collection: str, queries: Sequence[np.ndarray], n: int) -> tuple[float, float]:
    """(searches/s one call each, searches/s in query_batch calls of 32), one thread, no asyncio."""
    shard = store._shards[collection]
    params = search_params(exact=False, filtered=False, hnsw_ef=store.hnsw_ef)
    requests = [
        qe.QueryRequest(
            limit=10, query=qe.Query.Nearest(queries[i % len(queries)].tolist()), with_payload=True, params=params
        )
        for i in range(n)
    ]
    for r in requests[:20]:  # warm the caches
        shard.query(r)
    started = time.perf_counter()
    for r in requests:
        shard.query(r)
    single = n / (time.perf_counter() - started)
    started = time.perf_counter()
    for i in range(0, n, 32):
        shard.query_batch(qe.QueryBatchRequest(requests[i : i + 32]))
    batched = n / (time.perf_counter() - started)
    return single, batched


def model_ceiling(texts: Sequence[str], threads: int, batch: int) -> float:
    """Query embeddings/s: `threads` threads each embedding batches of `batch` texts, no asyncio."""
    _model()
    chunks = [list(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        started = time.perf_counter()
        list(pool.map(lambda c: _encode(c, True), chunks))
        return len(texts) / (time.perf_counter() - started)


@dataclass
class Line:
    metric: str
    target: float
    measured: float
    ceiling: float | None = None  # measured in the same run
    ceiling_name: str = ""
    lower_is_better: bool = False

    def ratio(self) -> float:
        if self.lower_is_better:
            return self.target / self.measured if self.measured else float("inf")
        return self.measured / self.target if self.target else float("nan")


def print_summary(title: str, lines: list[Line]) -> None:
    """metric | target | measured | measured vs target (>= 1.00 meets it) | ceiling of the same run."""
    print(f"\n{title}")
    header = f"{'metric':<52} {'target':>9} {'measured':>9} {'ratio':>6}  ceiling (same run)"
    print(header)
    print("-" * (len(header) + 40))
    for line in lines:
        ceiling = ""
        if line.ceiling is not None:
            share = line.measured / line.ceiling if line.ceiling else float("nan")
            ceiling = f"{line.ceiling:,.0f} {line.ceiling_name} (measured = {share:.2f} of it)"
        mark = "ok" if line.ratio() >= 1.0 else "MISS"
        print(f"{line.metric:<52} {line.target:>9,.2f} {line.measured:>9,.2f} {line.ratio():>6.2f}  {ceiling}  {mark}")
    print("ratio: measured / target (for latencies target / measured); >= 1.00 meets the target")
