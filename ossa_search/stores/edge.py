"""The embedded vector store: one qdrant-edge shard per collection under `root` (data_dir/qdrant).

qdrant-edge-py is the Qdrant engine in a wheel, without a server. One process owns a shard: a
second `EdgeShard.load` of the same directory fails on the WAL lock, so exactly one service (the
search service) opens the store and serves it to the others over gRPC; `open()` reports the
conflict as `Unavailable`.

- Every shard call runs in one dedicated thread, never on the event loop's thread. But
  qdrant-edge-py 0.9 keeps the GIL during its calls (measured: a thread sleeping 1 ms in a loop
  ticked once per exact search while 100 of them, 51 ms each over 100k x 1536, ran in another
  thread), so a call still pauses the loop for its duration: ~0.6 ms for an HNSW search at
  100k x 1536 (ef 64), which caps one process near 1,700 searches/s; `exact=True` over a large
  collection is for tests and recall checks. Concurrent HNSW searches of a collection run as one
  `query_batch` call (ossa_search.stores.edge_batch): one thread hop, 0.7-0.8x the engine time.
  Upserts go in batches of `batch` points so no single
  call is long; file copies (builds, snapshots) run in other threads.
- New points land in an appendable segment that is searched exactly (brute force). Once
  `optimize_threshold` points (or a tenth of the collection) wait unindexed, the HNSW index is
  built in the background. `optimize()` holds the GIL for its whole run, so it runs in a child process
  (`ossa_search.stores.edge_optimize`) on a flushed copy of the shard, while this process keeps serving
  searches and writes from the live shard. Writes taken meanwhile are journaled, and the optimized
  copy is swapped in (in-flight searches drained first) and the journal replayed onto it. A crash
  mid-swap is repaired at the next `open()`; a cancelled or failed build is simply retried later.
- Indexed segments keep an int8 copy of the vectors in RAM (scalar quantization, 4x smaller): HNSW
  walks it and the best 2 x limit candidates are rescored with the float vectors. Measured on
  20k x 1536 clustered vectors: HNSW build 6 s instead of 30 s, search p50 0.3-0.4 ms instead of
  1.3-2.4 ms, recall@10 1.000 against exact (0.949 without the oversampling). `exact=True`
  searches ignore the quantized copy. The walk's breadth is ef 64 (128 with a filter), not Qdrant's
  100: 1.5x the searches/s at 100k with recall@10 still 1.000 (edge_convert.HNSW_EF). Filtered
  searches post-filter the nearest points first (ossa_search.stores.edge_filtered).
- `snapshot()` flushes and copies the shard directory (restore: stop the service and put the copy
  back at root/<collection>).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import qdrant_edge as qe

from ossa_runtime.errors import FailedPrecondition, InvalidArgument, Unavailable
from ossa_search.gate import Gate
from ossa_search.stores.base import (
    COLLECTIONS,
    CollectionSpec,
    Filter,
    Hit,
    Point,
    check_filter,
    check_id,
    check_limit,
    check_points,
    check_vector,
    spec_of,
)
from ossa_search.stores.edge_batch import Results, SearchBatcher
from ossa_search.stores.edge_convert import SCHEMA, edge_config, edge_filter, search_params, upsert_op
from ossa_search.stores.edge_filtered import filtered_search

log = logging.getLogger("ossa.search")
T = TypeVar("T")
OPTIMIZER = Path(__file__).with_name("edge_optimize.py")


def _unindexed(shard: qe.EdgeShard) -> int:
    info = shard.info()
    return max(0, info.points_count - info.indexed_vectors_count)


def _build_due(shard: qe.EdgeShard, threshold: int) -> bool:
    """Enough points wait unindexed: `threshold`, or a tenth of the collection once it is large (each
    build copies the whole shard, so big collections build less often; a tenth searched exactly
    costs a few milliseconds)."""
    info = shard.info()
    return info.points_count - info.indexed_vectors_count >= max(threshold, info.points_count // 10)


class EdgeStore:
    """`VectorStore` on qdrant-edge shards in `root`; see the module docstring."""

    def __init__(
        self, root: Path, *, optimize_threshold: int = 2000, batch: int = 256, hnsw_ef: int | None = None
    ) -> None:
        self.root = Path(root)
        self.optimize_threshold = optimize_threshold
        self.hnsw_ef = hnsw_ef  # HNSW search breadth; None = edge_convert's (64, filtered 128)
        self._batch = batch
        self._shards: dict[str, qe.EdgeShard] = {}
        self._gates = {name: Gate() for name in COLLECTIONS}
        self._locks = {name: asyncio.Lock() for name in COLLECTIONS}
        self._journal: dict[str, list[Callable[[], qe.UpdateOperation]]] = {}
        self._builds: dict[str, asyncio.Task[None]] = {}
        self._swapping: set[str] = set()  # builds past the point of no return: awaited, never cancelled
        self._generation = dict.fromkeys(COLLECTIONS, 0)  # bumped by clear(): older builds are void
        # One thread: shard calls hold the GIL, so a second one adds only contention; file copies go
        # to asyncio.to_thread so they never queue searches behind them.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ossa-qdrant-edge")
        # Searches arriving together share one query_batch call (ossa_search.stores.edge_batch).
        self._searches = {name: SearchBatcher(self._search_batch(name)) for name in COLLECTIONS}
        self._state = "new"

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _check_open(self) -> None:
        if self._state != "open":
            raise FailedPrecondition(f"the vector store is {self._state}: call open() first")

    def _shard(self, collection: str) -> qe.EdgeShard:
        """The live shard; only while holding its gate (a swap replaces it under the exclusive gate)."""
        self._check_open()
        return self._shards[collection]

    def _paths(self, name: str) -> tuple[Path, Path, Path]:
        return self.root / name, self.root / f".{name}.optimizing", self.root / f".{name}.old"

    # Lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._state == "open":
            return
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            for spec in COLLECTIONS.values():
                self._shards[spec.name] = await self._run(self._open_shard, spec)
        except BaseException:
            for shard in self._shards.values():  # release the ones opened: their WAL locks too
                await self._run(_flush_close, shard)
            self._shards.clear()
            raise
        self._state = "open"
        for name, shard in self._shards.items():
            if await self._run(_build_due, shard, self.optimize_threshold):
                self._start_build(name)

    def _open_shard(self, spec: CollectionSpec) -> qe.EdgeShard:
        live, building, old = self._paths(spec.name)
        shutil.rmtree(building, ignore_errors=True)
        if not live.exists() and old.exists():
            old.rename(live)  # a swap was interrupted between its two renames
        shutil.rmtree(old, ignore_errors=True)
        config = edge_config(spec, self.optimize_threshold)
        try:
            if (live / "edge_config.json").exists():
                shard = qe.EdgeShard.load(str(live), config)
            else:
                shard = qe.EdgeShard.create(str(live), config)
        except Exception as err:
            raise Unavailable(
                f"cannot open the qdrant-edge shard {live}: {err} (one process owns a shard: is another "
                "service using this data directory?)"
            ) from err
        indexed = shard.info().payload_schema
        for key, kind in spec.indexes.items():
            if key not in indexed:
                shard.update(qe.UpdateOperation.create_field_index(key, SCHEMA[kind]))
        return shard

    async def close(self) -> None:
        if self._state != "open":
            self._state = "closed"
            self._pool.shutdown(wait=False)
            return
        self._state = "closing"
        await self._cancel_builds(list(self._builds))
        for name, shard in list(self._shards.items()):
            async with self._gates[name].exclusive():
                await self._run(_flush_close, shard)
        self._shards.clear()
        self._state = "closed"
        self._pool.shutdown(wait=True)

    # Writes ----------------------------------------------------------------------------------

    async def upsert(self, collection: str, points: Sequence[Point]) -> None:
        spec = spec_of(collection)
        rows = check_points(spec, points)
        if not rows:
            return
        self._check_open()
        async with self._locks[collection], self._gates[collection].use():
            shard = self._shard(collection)
            for start in range(0, len(rows), self._batch):
                await self._run(shard.update, upsert_op(rows[start : start + self._batch]))
            due = await self._run(_build_due, shard, self.optimize_threshold)
            if collection in self._journal:
                self._journal[collection].append(lambda: upsert_op(rows))
        if due:
            self._start_build(collection)

    async def delete(self, collection: str, ids: Sequence[str]) -> None:
        spec_of(collection)
        checked = [check_id(pid, f"ids[{i}]") for i, pid in enumerate(ids)]
        if not checked:
            return
        self._check_open()
        async with self._locks[collection], self._gates[collection].use():
            await self._run(self._shard(collection).update, qe.UpdateOperation.delete_points(list(checked)))
            if collection in self._journal:
                self._journal[collection].append(lambda: qe.UpdateOperation.delete_points(list(checked)))

    async def clear(self, collection: str) -> None:
        spec = spec_of(collection)
        self._check_open()
        await self._cancel_builds([collection])
        async with self._locks[collection], self._gates[collection].exclusive():
            self._generation[collection] += 1
            live = self._paths(collection)[0]
            await self._run(_flush_close, self._shard(collection))
            del self._shards[collection]
            await asyncio.to_thread(shutil.rmtree, live)
            self._shards[collection] = await self._run(self._open_shard, spec)

    # Reads -----------------------------------------------------------------------------------

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
        spec = spec_of(collection)
        condition = edge_filter(spec, check_filter(spec, filter))
        query = check_vector(spec, vector)
        request = qe.QueryRequest(
            limit=check_limit(limit),
            query=qe.Query.Nearest(query),
            filter=condition,
            with_payload=with_payload,
            params=search_params(exact=exact, filtered=condition is not None, hnsw_ef=self.hnsw_ef),
        )
        self._check_open()
        if exact:  # slow (brute force): never holds up a batch of HNSW searches
            async with self._gates[collection].use():
                found = await self._run(self._shard(collection).query, request)
        elif condition is not None:  # see ossa_search.stores.edge_filtered
            found = await filtered_search(
                self._searches[collection].search, query, limit, condition, self.hnsw_ef, with_payload
            )
        else:
            found = await self._searches[collection].search(request)
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in found]

    def _search_batch(self, collection: str) -> Callable[[Sequence[qe.QueryRequest]], Awaitable[Results]]:
        async def run(requests: Sequence[qe.QueryRequest]) -> Results:
            async with self._gates[collection].use():
                shard = self._shard(collection)
                if len(requests) == 1:
                    return [await self._run(shard.query, requests[0])]
                return await self._run(shard.query_batch, qe.QueryBatchRequest(list(requests)))

        return run

    async def count(self, collection: str) -> int:
        spec_of(collection)
        self._check_open()
        async with self._gates[collection].use():
            return await self._run(self._shard(collection).count, qe.CountRequest(exact=True))

    async def snapshot(self, collection: str, dest: Path) -> Path:
        spec_of(collection)
        target = Path(dest) / collection
        if target.exists():
            raise InvalidArgument("dest", f"{target} already exists")
        self._check_open()
        async with self._locks[collection], self._gates[collection].use():
            await self._run(self._shard(collection).flush)
            await asyncio.to_thread(_copy_shard, self._paths(collection)[0], target)
        return target

    # Background HNSW builds ------------------------------------------------------------------

    @property
    def building(self) -> set[str]:
        """Collections whose index is being built right now."""
        return {name for name, task in self._builds.items() if not task.done()}

    async def optimize(self, collection: str) -> None:
        """Build the collection's index now and wait for it (benchmarks, `ossa reindex`)."""
        spec_of(collection)
        self._check_open()
        task = self._builds.get(collection)
        if task is not None and not task.done():
            await asyncio.shield(task)
        self._start_build(collection)
        await asyncio.shield(self._builds[collection])

    def _start_build(self, collection: str) -> None:
        if self._state != "open" or collection in self.building:
            return
        self._builds[collection] = asyncio.get_running_loop().create_task(
            self._build(collection), name=f"qdrant-edge-optimize-{collection}"
        )

    async def _cancel_builds(self, names: list[str]) -> None:
        pairs = [(name, self._builds.pop(name)) for name in names if name in self._builds]
        for name, task in pairs:
            if name not in self._swapping:  # a swap half done would leave the shard closed or open twice
                task.cancel()
        await asyncio.gather(*(task for _, task in pairs), return_exceptions=True)

    async def _build(self, collection: str) -> None:
        live, building, old = self._paths(collection)
        spec = COLLECTIONS[collection]
        try:
            async with self._locks[collection], self._gates[collection].use():
                await self._run(self._shard(collection).flush)
                await asyncio.to_thread(_copy_shard, live, building)
                self._journal[collection] = []
                generation = self._generation[collection]
            if not await _optimize_in_child(building):
                return
            async with self._locks[collection], self._gates[collection].exclusive():
                if generation != self._generation[collection] or self._state != "open":
                    return  # cleared (or closing) meanwhile: the copy is stale
                self._swapping.add(collection)
                await self._run(_flush_close, self._shard(collection))
                del self._shards[collection]
                await asyncio.to_thread(_swap, live, building, old)
                shard = await self._run(self._open_shard, spec)
                self._shards[collection] = shard
                for make in self._journal.pop(collection, []):
                    await self._run(shard.update, make())
            log.info("qdrant-edge: built the index of %s", collection)
        except Exception:
            log.exception("qdrant-edge: building the index of %s failed; searches stay exact", collection)
        finally:
            self._swapping.discard(collection)
            self._journal.pop(collection, None)
            await asyncio.to_thread(shutil.rmtree, building, True)


def _flush_close(shard: qe.EdgeShard) -> None:
    shard.flush()
    shard.close()


def _copy_shard(source: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)


def _swap(live: Path, building: Path, old: Path) -> None:
    live.rename(old)
    building.rename(live)
    shutil.rmtree(old, ignore_errors=True)


async def _optimize_in_child(path: Path) -> bool:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(OPTIMIZER),
        str(path),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await proc.communicate()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        log.warning("qdrant-edge: optimizing %s failed (exit %s): %s", path, proc.returncode, err.decode()[-2000:])
        return False
    return True
