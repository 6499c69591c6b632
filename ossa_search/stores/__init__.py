"""The vector store: one contract, two backends, and the factory that picks one.

- `base`: the spec's collections, `Point`/`Hit`/`Filter`, the `VectorStore` protocol and the
  validation both backends share. Backends import only this (and their own helpers).
- `edge` (+ `edge_convert`, `edge_optimize`): embedded qdrant-edge shards, the default.
- `client`: a Qdrant server at `OSSA_QDRANT_URL` through qdrant-client.
- `factory`: `open_store(settings)`, the only module that imports the backends.
"""
