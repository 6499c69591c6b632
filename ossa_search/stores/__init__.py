"""The vector store: one contract, two backends, and the factory that picks one.

- `base`: the spec's collections, `Point`/`Hit`/`Filter`, the `VectorStore` protocol and the
  validation both backends share. Backends import only this (and their own helpers).
- `edge` (+ `edge_convert`, `edge_optimize`, `edge_batch`): embedded qdrant-edge shards, the default;
  concurrent searches of a collection share one `query_batch` call (`edge_batch`).
- `client`: a Qdrant server at `OSSA_QDRANT_URL` through qdrant-client.
- `factory`: `open_store(settings)`, the only module that imports the backends.
"""
