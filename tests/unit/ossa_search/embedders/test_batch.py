"""The micro-batcher (BatchingEmbedder) in front of a fake model that records its calls."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

import numpy as np
import pytest

from ossa_runtime.errors import Unavailable
from ossa_runtime.settings import Settings, SettingsError
from ossa_search.embedders.batch import BatchingEmbedder
from ossa_search.embedders.cache import CachedEmbedder
from ossa_search.embedders.factory import load_embedder
from ossa_search.embedders.local import LocalEmbedder

DIM = 8


def vector_of(text: str, query: bool) -> np.ndarray:
    """A fixed vector per (text, query): a caller can tell whether it got its own row."""
    digest = hashlib.sha256(f"{query}:{text}".encode()).digest()
    return np.frombuffer(digest[: DIM * 4], dtype=np.uint32).astype(np.float32)


class FakeModel:
    """Records every call; each takes `seconds`; a batch containing "boom" fails."""

    name = "fake"
    dim = DIM

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.calls: list[tuple[list[str], bool]] = []
        self.started: list[float] = []
        self.release: asyncio.Event | None = None  # when set by a test: calls wait for it

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        self.calls.append((list(texts), query))
        self.started.append(asyncio.get_running_loop().time())
        if self.release is not None:
            await self.release.wait()
        await asyncio.sleep(self.seconds)
        if "boom" in texts:
            raise Unavailable("the model fell over (test)")
        return np.stack([vector_of(t, query) for t in texts])


async def test_concurrent_callers_share_a_call_and_each_gets_its_own_rows_in_order() -> None:
    model = FakeModel(seconds=0.05)
    batcher = BatchingEmbedder(model, max_batch=64, linger=0.0, concurrency=1)
    first = asyncio.create_task(batcher.embed(["warm-up"], query=True))
    await asyncio.sleep(0.01)  # the model is busy with the first call: the next ones queue
    requests = [[f"q{i}-a", f"q{i}-b"] if i % 2 else [f"q{i}"] for i in range(10)]
    results = await asyncio.gather(*(batcher.embed(r, query=True) for r in requests))
    await first
    for texts, rows in zip(requests, results, strict=True):
        assert rows.shape == (len(texts), DIM) and rows.dtype == np.float32
        assert np.array_equal(rows, np.stack([vector_of(t, True) for t in texts]))
    assert len(model.calls) == 2  # the warm-up alone, then all ten together
    assert model.calls[1][0] == [t for r in requests for t in r]  # arrival order


async def test_a_failed_call_fails_every_request_in_its_batch_only() -> None:
    model = FakeModel(seconds=0.02)
    model.release = asyncio.Event()
    batcher = BatchingEmbedder(model, max_batch=64, linger=0.0, concurrency=1)
    busy = asyncio.create_task(batcher.embed(["busy"]))
    await asyncio.sleep(0.01)
    doomed = [asyncio.create_task(batcher.embed([t])) for t in ("fine", "boom", "also fine")]
    await asyncio.sleep(0.01)
    model.release.set()
    assert np.array_equal((await busy)[0], vector_of("busy", False))
    for task in doomed:
        with pytest.raises(Unavailable, match="fell over"):
            await task
    assert np.array_equal(await batcher.embed(["after"]), vector_of("after", False)[None])  # still works


async def test_batches_never_exceed_the_cap_and_long_requests_are_split() -> None:
    model = FakeModel(seconds=0.01)
    batcher = BatchingEmbedder(model, max_batch=4, linger=0.0, concurrency=2)
    long = [f"long-{i}" for i in range(9)]
    singles = [[f"s{i}"] for i in range(10)]
    results = await asyncio.gather(batcher.embed(long), *(batcher.embed(s) for s in singles))
    assert np.array_equal(results[0], np.stack([vector_of(t, False) for t in long]))
    for texts, rows in zip(singles, results[1:], strict=True):
        assert np.array_equal(rows, vector_of(texts[0], False)[None])
    assert all(len(texts) <= 4 for texts, _ in model.calls)
    assert sorted(t for texts, _ in model.calls for t in texts) == sorted(long + [s[0] for s in singles])


async def test_a_lone_query_waits_at_most_the_linger() -> None:
    model = FakeModel()
    linger = 0.2
    batcher = BatchingEmbedder(model, max_batch=16, linger=linger, concurrency=1)
    loop = asyncio.get_running_loop()
    submitted = loop.time()
    await batcher.embed(["alone"], query=True)
    waited = model.started[0] - submitted
    assert linger - 0.01 <= waited <= linger + 0.5  # the timer fires at the linger (slack: a busy machine)
    # A full batch does not wait for the linger at all.
    patient = BatchingEmbedder(model, max_batch=2, linger=60.0, concurrency=1)
    rows = await asyncio.wait_for(patient.embed(["x", "y"], query=True), timeout=10)
    assert rows.shape == (2, DIM)
    # Nor does anything with linger 0.
    eager = BatchingEmbedder(model, max_batch=16, linger=0.0, concurrency=1)
    await asyncio.wait_for(eager.embed(["z"]), timeout=10)


async def test_queries_go_before_waiting_passages_and_duplicates_are_embedded_once() -> None:
    model = FakeModel(seconds=0.02)
    batcher = BatchingEmbedder(model, max_batch=4, linger=0.0, concurrency=1)
    busy = asyncio.create_task(batcher.embed(["busy"]))
    await asyncio.sleep(0.01)
    passages = asyncio.create_task(batcher.embed([f"p{i}" for i in range(4)]))
    await asyncio.sleep(0)
    queries = asyncio.gather(batcher.embed(["same"], query=True), batcher.embed(["same"], query=True))
    first, second = await queries
    await asyncio.gather(busy, passages)
    assert np.array_equal(first, second)
    assert model.calls[1] == (["same"], True)  # before the passages that queued earlier
    assert model.calls[2][1] is False


async def test_a_cancelled_caller_leaves_the_queue() -> None:
    model = FakeModel()
    model.release = asyncio.Event()
    batcher = BatchingEmbedder(model, max_batch=16, linger=0.0, concurrency=1)
    busy = asyncio.create_task(batcher.embed(["busy"]))
    await asyncio.sleep(0.01)
    gone = asyncio.create_task(batcher.embed(["gone"]))
    kept = asyncio.create_task(batcher.embed(["kept"]))
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.sleep(0)
    model.release.set()
    await busy
    assert np.array_equal(await kept, vector_of("kept", False)[None])
    assert ["gone"] not in [texts for texts, _ in model.calls] and "gone" not in model.calls[1][0]
    assert gone.cancelled()


async def test_empty_input_and_bad_arguments() -> None:
    batcher = BatchingEmbedder(FakeModel())
    assert (await batcher.embed([])).shape == (0, DIM)
    with pytest.raises(ValueError, match="max_batch"):
        BatchingEmbedder(FakeModel(), max_batch=0)
    with pytest.raises(ValueError, match="linger"):
        BatchingEmbedder(FakeModel(), linger=-1)
    with pytest.raises(ValueError, match="concurrency"):
        BatchingEmbedder(FakeModel(), concurrency=0)


async def test_load_embedder_puts_the_cache_before_the_batcher_before_the_model() -> None:
    embedder = load_embedder(Settings(embed_batch_max=8, embed_batch_linger_ms=2.0, embed_threads=2))
    try:
        assert isinstance(embedder, CachedEmbedder)
        batcher = embedder.inner
        assert isinstance(batcher, BatchingEmbedder)
        assert (batcher.max_batch, batcher.linger, batcher.concurrency) == (8, 0.002, 2)
        assert isinstance(batcher.inner, LocalEmbedder) and batcher.inner.threads == 2
    finally:
        await embedder.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"embed_batch_max": 0}, "OSSA_EMBED_BATCH_MAX"),
        ({"embed_batch_linger_ms": -1.0}, "OSSA_EMBED_BATCH_LINGER_MS"),
        ({"embed_threads": 0}, "OSSA_EMBED_THREADS"),
    ],
)
def test_bad_batch_settings_name_the_variable(changes: dict[str, float], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_embedder(Settings(**changes))  # type: ignore[arg-type]


async def test_an_indexing_backlog_leaves_a_slot_for_queries() -> None:
    model = FakeModel()
    model.release = asyncio.Event()
    batcher = BatchingEmbedder(model, max_batch=1, linger=0.0, concurrency=2)
    passages = [asyncio.create_task(batcher.embed([f"p{i}"])) for i in range(3)]
    await asyncio.sleep(0.01)
    assert [q for _, q in model.calls] == [False]  # one passage call; the other slot stays free
    query = asyncio.create_task(batcher.embed(["needle"], query=True))
    await asyncio.sleep(0.01)
    assert model.calls[-1] == (["needle"], True)  # started while the passage call still runs
    model.release.set()
    assert np.array_equal(await query, vector_of("needle", True)[None])
    await asyncio.gather(*passages)
    assert sorted(t for texts, q in model.calls if not q for t in texts) == ["p0", "p1", "p2"]
