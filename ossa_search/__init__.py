"""Semantic search library: sentence embeddings, text chunking and a vector store with two backends.

- `ossa_search.embed`: the `Embedder` protocol, `load_embedder(settings)` and `fit()` (zero-padding
  a normalised vector to a collection's dimension keeps cosine similarity exact).
- `ossa_search.store`: the spec's collections, `Point`/`Hit`/`Filter`, the `VectorStore` protocol and
  `open_store(settings)`: an embedded qdrant-edge shard per collection, or a Qdrant server.
- `ossa_search.chunk`: paragraph- and sentence-aware splitting of long text for the knowledge base.

PostgreSQL stays the system of record: every collection can be rebuilt from it.
"""
