"""`CachedEmbedder`: query embeddings kept in an LRU of `OSSA_EMBED_CACHE_SIZE` texts (0 = off)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from ossa_search.embedders.base import Embedder, check_texts


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
