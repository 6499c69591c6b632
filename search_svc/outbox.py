"""The `search_outbox` table: changes the vector index has yet to catch up with.

Triggers (migration 0007) add a row in the same transaction as each change to an agent, a
workflow or a knowledge document. The indexer claims rows with FOR UPDATE SKIP LOCKED (the claim
pushes `available_at` forward, so no transaction stays open during the vector write), deletes them
once the write succeeded, and on failure keeps them with the error and a doubled backoff.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

CHANNEL = "ossa_search_outbox"  # NOTIFYed by the triggers
CLAIM_SECONDS = 60.0  # a claimed row comes back after this if the process (or PostgreSQL) failed mid-write


@dataclass(frozen=True)
class Change:
    id: int
    kind: str  # agent | workflow | knowledge
    entity_id: str
    op: str  # upsert | delete
    chunk_count: int | None
    attempts: int


class Outbox:
    def __init__(self, pool: asyncpg.Pool, retry_seconds: float, retry_max_seconds: float) -> None:
        self.pool = pool
        self.retry_seconds = retry_seconds
        self.retry_max_seconds = retry_max_seconds

    async def claim(self, limit: int) -> list[Change]:
        rows = await self.pool.fetch(
            """UPDATE search_outbox SET available_at = clock_timestamp() + make_interval(secs => $2)
               WHERE id IN (SELECT id FROM search_outbox WHERE available_at <= clock_timestamp()
                            ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
               RETURNING id, kind, entity_id::text AS entity_id, op, chunk_count, attempts""",
            limit,
            CLAIM_SECONDS,
        )
        changes = [Change(r["id"], r["kind"], r["entity_id"], r["op"], r["chunk_count"], r["attempts"]) for r in rows]
        return sorted(changes, key=lambda c: c.id)

    async def claim_one(self, change_id: int) -> Change | None:
        """Claim one row now (AddKnowledge indexes its own document at once); None if taken or gone."""
        row = await self.pool.fetchrow(
            """UPDATE search_outbox SET available_at = clock_timestamp() + make_interval(secs => $2)
               WHERE id = (SELECT id FROM search_outbox WHERE id = $1 FOR UPDATE SKIP LOCKED)
               RETURNING id, kind, entity_id::text AS entity_id, op, chunk_count, attempts""",
            change_id,
            CLAIM_SECONDS,
        )
        if row is None:
            return None
        return Change(row["id"], row["kind"], row["entity_id"], row["op"], row["chunk_count"], row["attempts"])

    async def done(self, changes: Sequence[Change]) -> None:
        if changes:
            await self.pool.execute("DELETE FROM search_outbox WHERE id = ANY($1::bigint[])", [c.id for c in changes])

    def backoff(self, attempts: int) -> float:
        """Seconds before retry number `attempts` (1-based): doubling from the first to the cap."""
        return float(min(self.retry_max_seconds, self.retry_seconds * 2 ** min(attempts - 1, 30)))

    async def failed(self, changes: Sequence[Change], error: str) -> None:
        for change in changes:
            attempts = change.attempts + 1
            await self.pool.execute(
                """UPDATE search_outbox SET attempts = $2, last_error = $3,
                          available_at = clock_timestamp() + make_interval(secs => $4)
                   WHERE id = $1""",
                change.id,
                attempts,
                error[:1000],
                self.backoff(attempts),
            )

    async def release_claims(self) -> int:
        """At start-up: rows a previous process had claimed are due now (one process owns the index)."""
        status: str = await self.pool.execute(
            "UPDATE search_outbox SET available_at = clock_timestamp() WHERE available_at > clock_timestamp()"
        )
        return int(status.rsplit(" ", 1)[-1])

    async def pending(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM search_outbox"))
