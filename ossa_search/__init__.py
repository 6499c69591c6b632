"""Semantic search library: sentence embeddings, text chunking and a vector store with two backends.

- `ossa_search.embedders`: the `Embedder` protocol and `fit()` (zero-padding a normalised vector
  to a collection's dimension keeps cosine similarity exact) in `base`, the `local` and `openai`
  backends, the query cache (`cache`) and micro-batcher (`batch`), and `load_embedder(settings)`
  in `factory`.
- `ossa_search.stores`: the spec's collections, `Point`/`Hit`/`Filter` and the `VectorStore`
  protocol in `base`, the `edge` (embedded qdrant-edge shards) and `client` (a Qdrant server)
  backends, and `open_store(settings)` in `factory`.
- `ossa_search.snapshot`: export and import of the vectors for `ossa backup` / `ossa restore`.
- `ossa_search.chunk`: paragraph- and sentence-aware splitting of long text for the knowledge base.

PostgreSQL stays the system of record: every collection can be rebuilt from it.
"""
