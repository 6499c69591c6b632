"""The indexer's embedding without servers: low-priority threads, many texts per model call, and a
backlog that grows while the model is busy and drains to 0 (fake outbox, sources, store and model;
the real thing: tests/integration/search_svc/test_index_backlog.py)."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import pytest

from ossa_search.embedders.batch import BatchingEmbedder
from ossa_search.embedders.cache import CachedEmbedder
from ossa_search.embedders.local import LocalEmbedder
from ossa_search.stores.base import Point, VectorStore
from search_svc.background import NICE, BackgroundEmbedder, local_encoder, lower_priority, split
from search_svc.burst import Burst
from search_svc.index import VectorIndex
from search_svc.indexer import Indexer
from search_svc.outbox import Change, Outbox
from search_svc.sources import Sources

DIM = 8


def vectors(texts: Sequence[str]) -> np.ndarray:
    """One unit vector per text, derived from its length (so order can be checked)."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for i, text in enumerate(texts):
        out[i, len(text) % DIM] = 1.0
    return out


class FakeModel:
    """A blocking encoder that records each call's thread, niceness and size."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[tuple[int, int, int]] = []  # (native thread id, niceness, texts)
        self.gate = gate
        self.lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if self.gate is not None:
            self.gate.wait(10)
        tid = threading.get_native_id()
        with self.lock:
            self.calls.append((tid, os.getpriority(os.PRIO_PROCESS, tid), len(texts)))
        return vectors(texts)


class Passthrough:
    """A non-local embedder (e.g. an HTTP endpoint): called as it is, on the event loop's side."""

    name, dim = "remote", DIM

    def __init__(self) -> None:
        self.seen: list[tuple[list[str], bool]] = []

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        self.seen.append((list(texts), query))
        return vectors(texts)


def test_split_keeps_order_and_cuts_near_equal_non_empty_slices() -> None:
    texts = [str(i) for i in range(7)]
    assert split(texts, 2) == [["0", "1", "2", "3"], ["4", "5", "6"]]
    assert split(texts, 3) == [["0", "1", "2"], ["3", "4"], ["5", "6"]]
    assert split(texts[:1], 4) == [["0"]]
    assert split(texts, 1) == [texts]


def test_lower_priority_only_lowers_the_calling_thread() -> None:
    main = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(lower_priority(NICE)))
    worker.start()
    worker.join()
    assert seen == [NICE]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main


async def test_passages_go_to_niced_threads_one_call_per_thread_in_order() -> None:
    model = FakeModel()
    background = BackgroundEmbedder(Passthrough(), threads=2, encode=model)
    texts = [f"agent {'x' * i}" for i in range(64)]
    rows = await background.embed(texts)
    await background.close()
    np.testing.assert_array_equal(rows, vectors(texts))
    assert sorted(size for _, _, size in model.calls) == [32, 32]  # 64 texts, two model calls
    assert {nice for _, nice, _ in model.calls} == {NICE}
    assert threading.get_native_id() not in {tid for tid, _, _ in model.calls}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < NICE  # the loop's thread is untouched


async def test_queries_and_non_local_models_are_not_moved() -> None:
    inner = Passthrough()
    assert BackgroundEmbedder(inner).encode is None  # an HTTP model costs no local CPU
    remote = BackgroundEmbedder(inner)
    await remote.embed(["a", "bb"])
    model = FakeModel()
    local = BackgroundEmbedder(inner, encode=model)
    await local.embed(["what translates"], query=True)
    assert inner.seen == [(["a", "bb"], False), (["what translates"], True)] and model.calls == []
    await remote.close()
    await local.close()


def test_the_local_model_is_found_behind_the_query_cache_and_batcher() -> None:
    wrapped = CachedEmbedder(BatchingEmbedder(LocalEmbedder()), 16)  # loads no model
    assert local_encoder(wrapped) is not None
    assert local_encoder(CachedEmbedder(Passthrough(), 16)) is None


# The indexer's batches and backlog --------------------------------------------------------------


class FakeOutbox:
    def __init__(self) -> None:
        self.rows: dict[int, Change] = {}
        self.claimed: set[int] = set()
        self.next_id = 1

    def add(self, entity_id: str) -> None:
        self.rows[self.next_id] = Change(self.next_id, "agent", entity_id, "upsert", None, 0)
        self.next_id += 1

    async def claim(self, limit: int) -> list[Change]:
        free = [c for i, c in sorted(self.rows.items()) if i not in self.claimed][:limit]
        self.claimed.update(c.id for c in free)
        return free

    async def done(self, changes: Sequence[Change]) -> None:
        for c in changes:
            self.rows.pop(c.id, None)
            self.claimed.discard(c.id)

    async def failed(self, changes: Sequence[Change], error: str) -> None:
        self.claimed.difference_update(c.id for c in changes)

    async def pending(self) -> int:
        return len(self.rows)

    async def release_claims(self) -> int:
        return 0


class FakeSources:
    def __init__(self) -> None:
        self.agents_by_id: dict[str, dict[str, Any]] = {}

    def add(self) -> str:
        agent_id = str(uuid.uuid4())
        self.agents_by_id[agent_id] = {
            "id": agent_id,
            "name": f"bench-{agent_id[:8]}",
            "type": "worker",
            "version": "1.0.0",
            "capabilities": ["bench"],
            "metadata": {},
        }
        return agent_id

    async def has_rows(self, collection: str) -> bool:
        return False

    async def agents(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        return [self.agents_by_id[i] for i in ids if i in self.agents_by_id]


class FakeStore:
    def __init__(self) -> None:
        self.points: dict[str, Point] = {}
        self.upserts: list[int] = []

    async def upsert(self, collection: str, points: Sequence[Point]) -> None:
        self.upserts.append(len(points))
        self.points.update((p.id, p) for p in points)

    async def delete(self, collection: str, ids: Sequence[str]) -> None:
        for i in ids:
            self.points.pop(i, None)

    async def count(self, collection: str) -> int:
        return len(self.points)


def fake_indexer(
    model: FakeModel, batch: int = 64, step: int = 64, burst: Burst | None = None
) -> tuple[Indexer, FakeOutbox, FakeSources, FakeStore]:
    outbox, sources, store = FakeOutbox(), FakeSources(), FakeStore()
    index = VectorIndex(cast(VectorStore, store), Passthrough())
    background = BackgroundEmbedder(Passthrough(), threads=2, encode=model)
    indexer = Indexer(
        cast(Sources, sources),
        cast(Outbox, outbox),
        index,
        poll_seconds=0.05,
        batch=batch,
        linger=0.0,
        background=background,
        burst=burst,
        step=step,
    )
    return indexer, outbox, sources, store


async def test_a_burst_is_indexed_in_full_batches_and_the_backlog_drains_to_zero() -> None:
    model = FakeModel()
    indexer, outbox, sources, store = fake_indexer(model)
    for _ in range(150):
        outbox.add(sources.add())
    backlog = [await indexer.backlog()]
    while await indexer.run_once():
        backlog.append(await indexer.backlog())
    await indexer.background.close()
    assert backlog == [150, 86, 22, 0]
    assert store.upserts == [64, 64, 22]  # one store write per batch
    assert sorted(size for _, _, size in model.calls) == [11, 11, 32, 32, 32, 32]  # two model calls per batch
    assert set(store.points) == set(sources.agents_by_id)


async def test_a_batch_is_applied_step_rows_at_a_time() -> None:
    model = FakeModel()
    indexer, outbox, sources, store = fake_indexer(model, step=16)
    for _ in range(70):
        outbox.add(sources.add())
    assert await indexer.run_once() == 64  # one claim of a full batch
    assert store.upserts == [16, 16, 16, 16] and await indexer.backlog() == 6
    assert await indexer.run_once() == 6 and store.upserts[4:] == [6]
    await indexer.background.close()
    assert set(store.points) == set(sources.agents_by_id)


class SwitchedBurst(Burst):
    """A burst that holds while `on` is set (the real one counts NOTIFYs over time)."""

    def __init__(self) -> None:
        super().__init__()
        self.on = False

    def holding(self) -> bool:
        return self.on


async def test_a_burst_that_begins_mid_batch_holds_the_rest_of_the_batch() -> None:
    burst = SwitchedBurst()
    indexer, outbox, sources, store = fake_indexer(FakeModel(), step=16, burst=burst)
    for _ in range(64):
        outbox.add(sources.add())

    async def burst_begins(texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        if not store.upserts:
            burst.on = True  # registrations start streaming in while the first step is embedded
        return await embed(texts, query=query)

    embed, indexer.background.embed = indexer.background.embed, burst_begins  # type: ignore[method-assign]
    batch = asyncio.create_task(indexer.run_once())
    await asyncio.sleep(0.5)
    assert store.upserts == [16] and not batch.done()  # the rest waits for the burst to pass
    burst.on = False
    assert await asyncio.wait_for(batch, 10) == 64
    assert store.upserts == [16, 16, 16, 16] and await indexer.backlog() == 0
    await indexer.background.close()


def test_the_step_must_be_positive() -> None:
    with pytest.raises(ValueError, match="step"):
        fake_indexer(FakeModel(), step=0)


async def test_the_loop_lets_the_backlog_grow_while_the_model_is_busy_then_drains_it() -> None:
    gate = threading.Event()  # closed: the model is starved (as behind a burst of registrations)
    model = FakeModel(gate)
    indexer, outbox, sources, store = fake_indexer(model, batch=16)
    indexer.start()
    try:
        for _ in range(100):
            outbox.add(sources.add())
            indexer.wake()
            await asyncio.sleep(0)
        await asyncio.sleep(0.1)
        assert await indexer.backlog() == 100 and not store.points  # nothing lost, nothing written yet
        gate.set()
        async with asyncio.timeout(10):
            while True:
                if not await indexer.backlog():
                    break
                await asyncio.sleep(0.01)
    finally:
        gate.set()
        await indexer.stop()
    assert set(store.points) == set(sources.agents_by_id)
    assert max(store.upserts) == 16 and sum(store.upserts) == 100


@pytest.mark.parametrize("threads", [0, -1])
def test_threads_must_be_positive(threads: int) -> None:
    with pytest.raises(ValueError, match="threads"):
        BackgroundEmbedder(Passthrough(), threads=threads)
