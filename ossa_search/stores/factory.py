"""`open_store(settings)`: the vector store backend the settings name.

`OSSA_QDRANT_URL` set: a Qdrant server through qdrant-client (ossa_search.stores.client; ":memory:"
runs its in-process mode, for tests); else the embedded qdrant-edge shards in `<data_dir>/qdrant`
(ossa_search.stores.edge). The backend is imported only when chosen.
"""

from __future__ import annotations

from ossa_runtime.settings import Settings
from ossa_search.stores.base import VectorStore


def open_store(settings: Settings) -> VectorStore:
    """`OSSA_QDRANT_URL` set: a Qdrant server (or ":memory:"); else embedded shards in data_dir/qdrant."""
    if settings.qdrant_url:
        from ossa_search.stores.client import QdrantClientStore

        return QdrantClientStore(settings.qdrant_url, api_key=settings.qdrant_api_key)
    from ossa_search.stores.edge import EdgeStore

    return EdgeStore(settings.data_dir / "qdrant")
