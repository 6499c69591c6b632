"""Embedding plus the vector store: documents in, ranked hits out (ossa_search does the work)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ossa_search.embedders.base import Embedder, fit
from ossa_search.stores.base import COLLECTIONS, Filter, Hit, Point, VectorStore
from search_svc.documents import Document

EMBED_BATCH = 64  # texts per embedding call (each call runs in the embedder's own thread)


def dimension(collection: str) -> int:
    return int(COLLECTIONS[collection].dim)


class VectorIndex:
    def __init__(self, store: VectorStore, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder

    async def put(self, collection: str, docs: Sequence[Document]) -> None:
        dim = dimension(collection)
        for start in range(0, len(docs), EMBED_BATCH):
            batch = docs[start : start + EMBED_BATCH]
            vectors = fit(await self.embedder.embed([d.text for d in batch]), dim)
            await self.store.upsert(
                collection, [Point(id=d.id, vector=vectors[i], payload=d.payload) for i, d in enumerate(batch)]
            )

    async def remove(self, collection: str, ids: Sequence[str]) -> None:
        if ids:
            await self.store.delete(collection, ids)

    async def query(
        self, collection: str, text: str, *, limit: int, where: Filter | None = None, with_payload: bool = True
    ) -> list[Hit]:
        vector = fit(await self.embedder.embed([text], query=True), dimension(collection))[0]
        return await self.store.search(collection, vector, limit=limit, filter=where, with_payload=with_payload)

    async def snapshot(self, dest: Path) -> dict[str, int]:
        """Copy every collection into dest/<collection> (the store flushes and holds its writes
        meanwhile); returns the points copied per collection."""
        counts = {}
        for name in COLLECTIONS:
            await self.store.snapshot(name, dest)
            counts[name] = await self.store.count(name)
        return counts
