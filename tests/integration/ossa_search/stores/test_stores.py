"""The vector store contract, run against both backends: EdgeStore (qdrant-edge shards in tmp_path)
and QdrantClientStore (qdrant-client's in-process ":memory:" mode, the server backend's code path)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe

from ossa_runtime.errors import FailedPrecondition, InvalidArgument, Unavailable
from ossa_runtime.settings import Settings
from ossa_search.embedders.base import fit
from ossa_search.stores.base import COLLECTIONS, Filter, Point, VectorStore
from ossa_search.stores.client import QdrantClientStore
from ossa_search.stores.edge import EdgeStore, _unindexed
from ossa_search.stores.factory import open_store

BACKENDS = ["edge", "client"]


def unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def points(keys: list[str], vectors: list[np.ndarray]) -> list[Point]:
    return [Point(k, v, {}) for k, v in zip(keys, vectors, strict=True)]


async def until(condition: Callable[[], bool]) -> None:
    """Poll `condition` (no deadline of its own: pytest-timeout bounds the test)."""
    while True:
        if condition():
            return
        await asyncio.sleep(0.005)


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorStore]:
    s: VectorStore = EdgeStore(tmp_path / "qdrant") if request.param == "edge" else QdrantClientStore(":memory:")
    await s.open()
    yield s
    await s.close()


def test_collections_follow_the_spec() -> None:
    assert {name: spec.dim for name, spec in COLLECTIONS.items()} == {
        "agents": 768,
        "workflows": 768,
        "knowledge": 1536,
    }
    assert all(spec.distance == "cosine" for spec in COLLECTIONS.values())
    assert COLLECTIONS["agents"].indexes["agent_type"] == "keyword"
    assert COLLECTIONS["workflows"].indexes["complexity"] == "float"
    assert COLLECTIONS["knowledge"].indexes["timestamp"] == "datetime"
    assert COLLECTIONS["knowledge"].indexes["source"] == "keyword"


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    edge = open_store(Settings(data_dir=tmp_path))
    assert isinstance(edge, EdgeStore) and edge.root == tmp_path / "qdrant"
    assert isinstance(open_store(Settings(data_dir=tmp_path, qdrant_url=":memory:")), QdrantClientStore)


async def test_upsert_then_search_ranks_the_nearest_first(store: VectorStore) -> None:
    rng = np.random.default_rng(1)
    vectors = [unit(rng, 768) for _ in range(40)]
    keys = ids(40)
    await store.upsert(
        "agents", [Point(k, v, {"name": f"a{i}"}) for i, (k, v) in enumerate(zip(keys, vectors, strict=True))]
    )
    assert await store.count("agents") == 40
    probe = vectors[5] + 0.3 * vectors[9]
    hits = await store.search("agents", probe / np.linalg.norm(probe), limit=3)
    assert [h.id for h in hits[:2]] == [keys[5], keys[9]]
    assert hits[0].payload == {"name": "a5"}
    assert hits[0].score > hits[1].score > hits[2].score
    bare = await store.search("agents", probe / np.linalg.norm(probe), limit=3, with_payload=False)
    assert [(h.id, h.score, h.payload) for h in bare] == [(h.id, h.score, {}) for h in hits]
    exact = await store.search("agents", vectors[5], limit=1, exact=True)
    assert exact[0].id == keys[5] and exact[0].score == pytest.approx(1.0, abs=1e-5)
    # Upserting the same id replaces the point.
    await store.upsert("agents", [Point(keys[5], vectors[30], {"name": "moved"})])
    assert await store.count("agents") == 40
    hits = await store.search("agents", vectors[30], limit=2)
    assert {h.payload["name"] for h in hits} == {"moved", "a30"}


async def test_filters_keyword_any_of_and_ranges(store: VectorStore) -> None:
    rng = np.random.default_rng(2)
    keys = ids(6)
    caps = [["translate"], ["summarize", "translate"], ["ocr"], ["ocr", "vision"], ["chat"], ["summarize"]]
    await store.upsert(
        "agents",
        [
            Point(k, unit(rng, 768), {"agent_type": "worker" if i % 2 else "critic", "capabilities": caps[i]})
            for i, k in enumerate(keys)
        ],
    )
    probe = unit(rng, 768)
    workers = await store.search("agents", probe, limit=10, filter=Filter(must={"agent_type": "worker"}))
    assert {h.id for h in workers} == {keys[1], keys[3], keys[5]}
    anyof = await store.search("agents", probe, limit=10, filter=Filter(must={"capabilities": ["translate", "ocr"]}))
    assert {h.id for h in anyof} == {keys[0], keys[1], keys[2], keys[3]}
    both = Filter(must={"capabilities": ["translate", "ocr"], "agent_type": "critic"})
    assert {h.id for h in await store.search("agents", probe, limit=10, filter=both)} == {keys[0], keys[2]}

    wf = ids(4)
    await store.upsert(
        "workflows",
        [
            Point(k, unit(rng, 768), {"complexity": c, "tags": ["etl"]})
            for k, c in zip(wf, [0.1, 0.5, 0.9, 2], strict=True)
        ],
    )
    mid = await store.search("workflows", unit(rng, 768), limit=10, filter=Filter(ranges={"complexity": (0.5, 0.9)}))
    assert {h.id for h in mid} == {wf[1], wf[2]}
    low = await store.search("workflows", unit(rng, 768), limit=10, filter=Filter(ranges={"complexity": (None, 0.5)}))
    assert {h.id for h in low} == {wf[0], wf[1]}
    exact = await store.search("workflows", unit(rng, 768), limit=10, filter=Filter(must={"complexity": 0.9}))
    assert [h.id for h in exact] == [wf[2]]

    kn = ids(3)
    times = [datetime(2026, 1, 1, tzinfo=UTC), "2026-06-01T12:00:00Z", datetime(2026, 11, 1, tzinfo=UTC).timestamp()]
    await store.upsert(
        "knowledge",
        [Point(k, unit(rng, 1536), {"source": "wiki", "timestamp": t}) for k, t in zip(kn, times, strict=True)],
    )
    since = datetime(2026, 5, 1, tzinfo=UTC).timestamp()
    recent = Filter(must={"source": "wiki"}, ranges={"timestamp": (since, None)})
    found = await store.search("knowledge", unit(rng, 1536), limit=10, filter=recent)
    assert {h.id for h in found} == {kn[1], kn[2]}
    by_id = {h.id: h.payload["timestamp"] for h in found}
    assert by_id[kn[1]] == "2026-06-01T12:00:00Z" and by_id[kn[2]] == "2026-11-01T00:00:00Z"
    window = Filter(ranges={"timestamp": (None, datetime(2026, 6, 1, 12, tzinfo=UTC).timestamp())})
    assert {h.id for h in await store.search("knowledge", unit(rng, 1536), limit=10, filter=window)} == {kn[0], kn[1]}
    nothing = Filter(must={"source": "elsewhere"})
    assert await store.search("knowledge", unit(rng, 1536), limit=10, filter=nothing) == []


async def test_delete_count_and_clear(store: VectorStore) -> None:
    rng = np.random.default_rng(3)
    keys = ids(10)
    vectors = [unit(rng, 768) for _ in keys]
    await store.upsert("workflows", [Point(k, v, {}) for k, v in zip(keys, vectors, strict=True)])
    await store.delete("workflows", keys[:3])
    assert await store.count("workflows") == 7
    hits = await store.search("workflows", vectors[0], limit=10)
    assert keys[0] not in {h.id for h in hits} and len(hits) == 7
    await store.delete("workflows", [str(uuid.uuid4())])  # unknown ids are ignored
    await store.clear("workflows")
    assert await store.count("workflows") == 0
    assert await store.search("workflows", vectors[5], limit=3) == []
    await store.upsert("workflows", [Point(keys[5], vectors[5], {"name": "back"})])
    assert (await store.search("workflows", vectors[5], limit=1))[0].payload == {"name": "back"}
    assert await store.count("agents") == 0  # collections are separate


async def test_bad_input_names_the_field(store: VectorStore) -> None:
    rng = np.random.default_rng(4)
    good = unit(rng, 768)
    late = Point(str(uuid.uuid4()), unit(rng, 1536), {"timestamp": "soon"})
    unbounded = Filter(ranges={"complexity": (None, None)})
    cases: list[tuple[Callable[[], Awaitable[object]], str]] = [
        (lambda: store.upsert("nope", [Point(str(uuid.uuid4()), good, {})]), "collection"),
        (lambda: store.upsert("agents", [Point("not-a-uuid", good, {})]), "points[0].id"),
        (lambda: store.upsert("agents", [Point(str(uuid.uuid4()), unit(rng, 384), {})]), "points[0].vector"),
        (lambda: store.upsert("agents", [Point(str(uuid.uuid4()), np.zeros(768), {})]), "points[0].vector"),
        (
            lambda: store.upsert("knowledge", [late]),
            "timestamp",
        ),
        (lambda: store.search("agents", good, limit=0), "limit"),
        (
            lambda: store.search("agents", good, limit=3, filter=unbounded),
            "complexity",
        ),
        (lambda: store.search("agents", good, limit=3, filter=Filter(must={"capabilities": []})), "capabilities"),
        (lambda: store.delete("agents", ["x"]), "ids[0]"),
    ]
    for call, name in cases:
        with pytest.raises(InvalidArgument) as err:
            await call()
        assert name in str(err.value)


async def test_snapshot_writes_the_collection(store: VectorStore, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    keys = ids(5)
    vectors = [unit(rng, 768) for _ in keys]
    await store.upsert("agents", [Point(k, v, {"i": i}) for i, (k, v) in enumerate(zip(keys, vectors, strict=True))])
    written = await store.snapshot("agents", tmp_path / "backup")
    assert written.exists() and str(written).startswith(str(tmp_path / "backup"))
    with pytest.raises(InvalidArgument, match="dest"):
        await store.snapshot("agents", tmp_path / "backup")
    if isinstance(store, EdgeStore):
        copy = await asyncio.to_thread(qe.EdgeShard.load, str(written))
        try:
            assert copy.count(qe.CountRequest(exact=True)) == 5
        finally:
            copy.close()
    else:
        assert isinstance(store, QdrantClientStore)
        await store.clear("agents")
        assert await store.restore_jsonl("agents", written) == 5
        assert (await store.search("agents", vectors[2], limit=1))[0].payload == {"i": 2}


async def test_closed_store_refuses_and_close_is_idempotent(store: VectorStore) -> None:
    await store.close()
    await store.close()
    with pytest.raises(FailedPrecondition):
        await store.count("agents")


# EdgeStore only ------------------------------------------------------------------------------------


async def test_edge_reopen_keeps_points_and_a_second_owner_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    keys = ids(20)
    vectors = [fit(unit(rng, 384), 1536) for _ in keys]
    first = EdgeStore(tmp_path / "q")
    await first.open()
    await first.upsert("knowledge", [Point(k, v, {"source": "s"}) for k, v in zip(keys, vectors, strict=True)])
    await first.delete("knowledge", keys[:2])
    with pytest.raises(Unavailable, match="one process owns a shard"):
        await EdgeStore(tmp_path / "q").open()
    await first.close()
    second = EdgeStore(tmp_path / "q")
    await second.open()
    try:
        assert await second.count("knowledge") == 18
        assert (await second.search("knowledge", vectors[7], limit=1))[0].id == keys[7]
    finally:
        await second.close()


async def test_edge_builds_the_index_in_the_background_and_keeps_serving(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    store = EdgeStore(tmp_path / "q", optimize_threshold=400)
    await store.open()
    try:
        keys = ids(600)
        vectors = np.stack([unit(rng, 768) for _ in keys])
        await store.upsert(
            "agents", [Point(k, v, {"n": i}) for i, (k, v) in enumerate(zip(keys, vectors, strict=True))]
        )
        assert "agents" in store.building  # the threshold was crossed: a child process builds HNSW
        # Searches and writes go on meanwhile; writes taken during the build survive the swap.
        late = ids(5)
        late_vectors = [unit(rng, 768) for _ in late]
        served = 0
        while "agents" in store.building or served < 5:
            hit = (await store.search("agents", vectors[served % 600], limit=1))[0]
            assert hit.id == keys[served % 600]
            if served < 5:
                await store.upsert("agents", [Point(late[served], late_vectors[served], {"late": True})])
            served += 1
            await asyncio.sleep(0.01)
        await store.delete("agents", [late[0]])
        await store.optimize("agents")  # a no-op build when little is waiting, but it waits for it
        assert await store.count("agents") == 604
        assert await asyncio.to_thread(_unindexed, store._shards["agents"]) < 400
        assert (await store.search("agents", late_vectors[3], limit=1))[0].id == late[3]
        assert (await store.search("agents", vectors[3], limit=1))[0].id == keys[3]
    finally:
        await store.close()
    assert not any(p.name.startswith(".") for p in (tmp_path / "q").iterdir())


async def test_edge_clear_during_a_build_is_not_undone_by_its_swap(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    store = EdgeStore(tmp_path / "q", optimize_threshold=300)
    await store.open()
    try:
        keys = ids(400)
        await store.upsert("workflows", points(keys, [unit(rng, 768) for _ in keys]))
        build = store._builds["workflows"]
        # Wait until the copy the child optimizes exists.
        await until(lambda: (tmp_path / "q" / ".workflows.optimizing").exists() or build.done())
        await store.upsert("workflows", points(ids(1), [unit(rng, 768)]))  # taken while the build runs
        await store.clear("workflows")
        assert build.cancelled() or build.done()
        fresh = ids(1)
        await store.upsert("workflows", points(fresh, [unit(rng, 768)]))
        await until(lambda: not store.building)
        assert await store.count("workflows") == 1
    finally:
        await store.close()


async def test_edge_filtered_searches_match_exact_ones_on_both_paths(tmp_path: Path) -> None:
    """A broad filter is answered among the nearest points; a rare one falls back to the filtered
    walk (ossa_search.stores.edge_filtered): both give what brute force gives."""
    rng = np.random.default_rng(11)
    store = EdgeStore(tmp_path / "q")
    await store.open()
    try:
        keys = ids(600)
        vectors = [unit(rng, 768) for _ in keys]
        kinds = ["rare" if i % 200 == 7 else "worker" if i % 2 else "critic" for i in range(600)]
        await store.upsert(
            "agents", [Point(k, v, {"agent_type": t}) for k, v, t in zip(keys, vectors, kinds, strict=True)]
        )
        for kind, limit in [("worker", 10), ("rare", 5)]:
            flt = Filter(must={"agent_type": kind})
            for probe in vectors[:10]:
                found = await store.search("agents", probe, limit=limit, filter=flt)
                exact = await store.search("agents", probe, limit=limit, filter=flt, exact=True)
                assert [h.id for h in found] == [h.id for h in exact]
                assert all(h.payload["agent_type"] == kind for h in found)
                bare = await store.search("agents", probe, limit=limit, filter=flt, with_payload=False)
                assert [(h.id, h.payload) for h in bare] == [(h.id, {}) for h in found]
        assert len(exact) == 3  # the rare kind: all three, no more
    finally:
        await store.close()
