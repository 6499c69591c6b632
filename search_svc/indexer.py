"""Keeps the vector collections in step with PostgreSQL: the outbox consumer and full rebuilds.

While registrations stream in (`burst.py`: NOTIFYs faster than 20 a second) the loop waits, at
most 30 s per burst, so that indexing does not share the cores with the write path; then it drains.
A burst that begins while a batch is being embedded holds the rest of that batch too: a batch is
embedded `step` rows at a time (a fraction of a second of model CPU each) with a look in between.
The loop claims a batch of `search_outbox` rows, re-reads each entity's current state (so the
order and number of changes to one entity do not matter: the last state wins), upserts or deletes
its point, and only then deletes the rows. A failed write leaves its rows, with the error and a
doubling backoff, to be retried; nothing is lost while the vector store is down. The loop wakes on
the triggers' NOTIFY (then lingers `linger` seconds so that a stream of single inserts becomes
batches of up to `batch` rows) and polls every `poll_seconds` besides (retries come due, a lost
LISTEN).

A rebuild clears collections and re-embeds everything from PostgreSQL, under the same lock as the
loop's batches; it also runs at start-up for any collection that is empty while PostgreSQL has
rows for it (a new or wiped vector store heals itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import asyncpg

from search_svc.background import BackgroundEmbedder
from search_svc.burst import Burst
from search_svc.documents import (
    AGENTS,
    COLLECTION_OF_KIND,
    KNOWLEDGE,
    WORKFLOWS,
    Document,
    agent_document,
    chunk_document,
    chunk_id,
    workflow_document,
)
from search_svc.index import VectorIndex
from search_svc.outbox import CHANNEL, Change, Outbox
from search_svc.sources import Sources

log = logging.getLogger("ossa.search")
REBUILD_BATCH = 256
BUILDERS: dict[str, Callable[[Any], Document]] = {
    AGENTS: agent_document,
    WORKFLOWS: workflow_document,
    KNOWLEDGE: chunk_document,
}
ALL_COLLECTIONS = (AGENTS, WORKFLOWS, KNOWLEDGE)
LINGER_SECONDS = 0.05  # after a NOTIFY, wait this long for more changes before claiming
HOLD_STEP_SECONDS = 0.1  # while a burst of writes is held, look again this often
STEP = 16  # outbox rows applied between two looks for a burst (~0.3 s of model CPU for agents)


class Indexer:
    def __init__(
        self,
        sources: Sources,
        outbox: Outbox,
        index: VectorIndex,
        *,
        poll_seconds: float,
        batch: int,
        linger: float = LINGER_SECONDS,
        background: BackgroundEmbedder | None = None,
        burst: Burst | None = None,
        step: int = STEP,
    ) -> None:
        if step < 1:
            raise ValueError(f"step must be 1 or more, got {step}")
        self.sources = sources
        self.outbox = outbox
        self.index = index
        # Writes embed on the low-priority threads; searches keep `index` (and its threads).
        self.background = background or BackgroundEmbedder(index.embedder)
        self.writes = VectorIndex(index.store, self.background)
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.linger = linger
        self.burst = burst or Burst()
        self.step = step
        self._lock = asyncio.Lock()  # outbox batches and rebuilds never interleave
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._rebuilds: set[asyncio.Task[dict[str, int]]] = set()
        self._listener: asyncpg.Connection | None = None

    # Applying changes ---------------------------------------------------------------------------

    async def apply(self, kind: str, changes: Sequence[Change]) -> None:
        """Make the collection of `kind` match PostgreSQL for these entities (raises on failure)."""
        collection = COLLECTION_OF_KIND[kind]
        if kind == "knowledge":
            await self._apply_knowledge(changes)
            return
        ids = sorted({c.entity_id for c in changes})
        rows = await (self.sources.agents(ids) if kind == "agent" else self.sources.workflows(ids))
        found = {r["id"] for r in rows}
        await self.writes.put(collection, [BUILDERS[collection](r) for r in rows])
        await self.writes.remove(collection, [i for i in ids if i not in found])

    async def _apply_knowledge(self, changes: Sequence[Change]) -> None:
        gone = [c for c in changes if c.op == "delete"]
        added = sorted({c.entity_id for c in changes if c.op != "delete"} - {c.entity_id for c in gone})
        rows = await self.sources.chunks_of(added) if added else []
        await self.writes.put(KNOWLEDGE, [chunk_document(r) for r in rows])
        await self.writes.remove(KNOWLEDGE, [chunk_id(c.entity_id, i) for c in gone for i in range(c.chunk_count or 0)])

    async def process(self, changes: Sequence[Change]) -> int:
        """Apply claimed changes kind by kind; returns how many were applied (the rest are retried)."""
        applied = 0
        for kind in COLLECTION_OF_KIND:
            group = [c for c in changes if c.kind == kind]
            if not group:
                continue
            try:
                await self.apply(kind, group)
            except Exception as err:  # the rows stay: retried after a backoff
                message = f"{type(err).__name__}: {err}"
                log.warning("vector write failed; will retry", extra={"metadata": {"kind": kind, "error": message}})
                await self.outbox.failed(group, message)
                continue
            await self.outbox.done(group)
            applied += len(group)
        return applied

    async def run_once(self) -> int:
        """One batch from the outbox, `step` rows at a time, each after any burst of writes that
        began meanwhile (`_hold`); returns how many rows were claimed."""
        async with self._lock:
            changes = await self.outbox.claim(self.batch)
            for first in range(0, len(changes), self.step):
                if first:
                    await self._hold()
                await self.process(changes[first : first + self.step])
            return len(changes)

    async def index_now(self, change_id: int) -> bool:
        """Apply one outbox row at once (AddKnowledge/DeleteKnowledge); False if it must wait for a retry.

        No lock: a knowledge document never changes, and search results are checked against
        PostgreSQL, so racing a rebuild costs at most a stale point that is never shown.
        """
        change = await self.outbox.claim_one(change_id)
        if change is None:
            return False  # the loop has it
        return await self.process([change]) == 1

    async def backlog(self) -> int:
        """Changes not yet in the vector store (the `ossa_search_index_backlog` gauge)."""
        return await self.outbox.pending()

    # Rebuilding ---------------------------------------------------------------------------------

    async def rebuild(self, collections: Iterable[str] = ALL_COLLECTIONS) -> dict[str, int]:
        counts: dict[str, int] = {}
        async with self._lock:
            for collection in collections:
                await self.index.store.clear(collection)
                count = 0
                async for rows in self.sources.scan(collection, REBUILD_BATCH):
                    await self.writes.put(collection, [BUILDERS[collection](r) for r in rows])
                    count += len(rows)
                counts[collection] = count
                log.info("collection rebuilt", extra={"metadata": {"collection": collection, "points": count}})
        return counts

    async def reindex(self) -> dict[str, int]:
        """Rebuild every collection; runs to the end even if the caller goes away."""
        task = asyncio.create_task(self.rebuild(), name="search-reindex")
        self._rebuilds.add(task)
        task.add_done_callback(self._rebuilds.discard)
        return await asyncio.shield(task)

    async def heal(self) -> list[str]:
        """Rebuild the collections that are empty while PostgreSQL has rows for them."""
        empty = [c for c in ALL_COLLECTIONS if await self.index.store.count(c) == 0 and await self.sources.has_rows(c)]
        if empty:
            log.info("rebuilding empty collections", extra={"metadata": {"collections": empty}})
            await self.rebuild(empty)
        return empty

    # The loop -----------------------------------------------------------------------------------

    def wake(self, *_: object) -> None:
        self.burst.note()
        self._wake.set()

    async def _hold(self) -> None:
        """Wait while writes stream in (Burst.holding); no longer than the burst's bound."""
        began = time.monotonic()
        while not self._stopping and self.burst.holding():  # noqa: ASYNC110 - a rate over time, not an event
            await asyncio.sleep(HOLD_STEP_SECONDS)
        if (held := time.monotonic() - began) >= HOLD_STEP_SECONDS:
            self.burst.held_seconds += held
            log.info("indexing held during a burst of writes", extra={"metadata": {"seconds": round(held, 1)}})

    async def _listen(self) -> None:
        """LISTEN on the triggers' channel (best effort: polling covers a lost connection)."""
        if self._listener is not None and not self._listener.is_closed():
            return
        await self._unlisten()
        try:
            conn = await self.sources.pool.acquire()
        except Exception as err:
            log.debug("cannot LISTEN for outbox changes", extra={"metadata": {"error": str(err)}})
            return
        try:
            await conn.add_listener(CHANNEL, self.wake)
        except Exception as err:
            await self.sources.pool.release(conn)
            log.debug("cannot LISTEN for outbox changes", extra={"metadata": {"error": str(err)}})
            return
        self._listener = conn

    async def _unlisten(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            with contextlib.suppress(Exception):
                if not conn.is_closed():
                    await conn.remove_listener(CHANNEL, self.wake)
            with contextlib.suppress(Exception):
                await self.sources.pool.release(conn)

    async def _loop(self) -> None:
        checked = False  # the start-up check, retried until it succeeds
        while not self._stopping:
            if not checked:
                try:
                    await self.outbox.release_claims()
                    await self.heal()
                    checked = True
                except Exception as err:
                    log.warning("start-up check of the vector store failed", extra={"metadata": {"error": str(err)}})
            await self._listen()
            await self._hold()
            self._wake.clear()
            try:
                claimed = await self.run_once()
            except Exception as err:  # PostgreSQL away: try again after the poll interval
                log.warning("search indexer batch failed", extra={"metadata": {"error": str(err)}})
                claimed = 0
            if claimed >= self.batch or self._stopping:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
                    if self.linger > 0 and not self._stopping:
                        await asyncio.sleep(self.linger)  # let more NOTIFYs arrive: one batch for many

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._loop(), name="search-indexer")

    async def stop(self) -> None:
        """Let the current batch finish (never cancel a write half-way), stop rebuilds, un-LISTEN."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for task in list(self._rebuilds):
            task.cancel()
        await asyncio.gather(*self._rebuilds, return_exceptions=True)
        await self._unlisten()
        await self.background.close()
