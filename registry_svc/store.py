"""The registry's SQL: agents in PostgreSQL, the system of record.

Registrations that arrive together are inserted together (registry_svc.groups): one INSERT of
many rows, one commit, `ON CONFLICT (name) DO NOTHING` so that a taken name fails its own
registration only (ALREADY_EXISTS), never its batch. A batch the database refuses for another
reason is retried row by row, so each caller gets its own error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from ossa_runtime.errors import AlreadyExists, FailedPrecondition, NotFound
from registry_svc.groups import Group
from registry_svc.validation import AgentFilter, NewAgent

Row: TypeAlias = Any  # asyncpg.Record
_COLUMNS = (
    "id::text AS id, name, type, version, status, capabilities, config, metadata, "
    "created_at, updated_at, last_heartbeat"
)


class AgentStore:
    def __init__(self, pool: asyncpg.Pool, linger: float = 0.0) -> None:
        self.pool = pool
        self.creates: Group[NewAgent, Row] = Group("register", self._create_many, linger=linger)

    async def create(self, agent: NewAgent) -> Row:
        """Insert an agent (sharing the INSERT with concurrent registrations); registration counts
        as its first sign of life."""
        return await self.creates.submit(agent)

    async def _create_many(self, agents: list[NewAgent]) -> list[Row | BaseException]:
        if len(agents) == 1:
            return [await self._create_one(agents[0])]
        try:
            rows = await self.pool.fetch(
                f"""INSERT INTO agents (name, type, version, capabilities, config, metadata, last_heartbeat)
                    SELECT n, t, v, c::jsonb, g, m, CURRENT_TIMESTAMP
                      FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[])
                           WITH ORDINALITY AS x(n, t, v, c, g, m, i)
                     ORDER BY i
                    ON CONFLICT (name) DO NOTHING
                    RETURNING {_COLUMNS}""",
                [a.name for a in agents],
                [a.type for a in agents],
                [a.version for a in agents],
                # As JSON text: asyncpg would read a list of lists as one two-dimensional array, and
                # unnest() would store each agent's single capability as a JSON string, not a list.
                [json.dumps(a.capabilities) for a in agents],
                [a.config for a in agents],
                [a.metadata for a in agents],
            )
        except (asyncpg.PostgresError, ValueError, TypeError):  # not a name clash: each row on its own
            return [await self._create_one_caught(a) for a in agents]
        by_name = {r["name"]: r for r in rows}
        out: list[Row | BaseException] = []
        for agent in agents:
            row = by_name.pop(agent.name, None)  # the first of two equal names in one batch wins
            out.append(row if row is not None else _taken(agent.name))
        return out

    async def _create_one_caught(self, agent: NewAgent) -> Row | BaseException:
        try:
            return await self._create_one(agent)
        except Exception as err:
            return err

    async def _create_one(self, agent: NewAgent) -> Row:
        try:
            row: Row = await self.pool.fetchrow(
                f"""INSERT INTO agents (name, type, version, capabilities, config, metadata, last_heartbeat)
                    VALUES ($1, $2, $3, $4, $5, $6, CURRENT_TIMESTAMP)
                    RETURNING {_COLUMNS}""",
                agent.name,
                agent.type,
                agent.version,
                agent.capabilities,
                agent.config,
                agent.metadata,
            )
        except asyncpg.UniqueViolationError:
            raise _taken(agent.name) from None
        return row

    async def get(self, agent_id: str) -> Row:
        row: Row | None = await self.pool.fetchrow(f"SELECT {_COLUMNS} FROM agents WHERE id = $1", agent_id)
        if row is None:
            raise NotFound(f"agent {agent_id} not found")
        return row

    async def exists(self, agent_id: str) -> bool:
        return bool(await self.pool.fetchval("SELECT EXISTS (SELECT 1 FROM agents WHERE id = $1)", agent_id))

    async def find(self, where: AgentFilter) -> list[Row]:
        rows: list[Row] = await self.pool.fetch(
            f"""SELECT {_COLUMNS} FROM agents
                WHERE ($1::text IS NULL OR type = $1) AND ($2::text IS NULL OR status = $2)
                  AND ($5::text IS NULL OR name = $5)
                ORDER BY created_at, id LIMIT $3 OFFSET $4""",
            where.type,
            where.status,
            where.limit,
            where.offset,
            where.name,
        )
        return rows

    async def list_all(self) -> list[Row]:
        rows: list[Row] = await self.pool.fetch(f"SELECT {_COLUMNS} FROM agents")
        return rows

    async def delete(self, agent_id: str) -> None:
        try:
            deleted = await self.pool.fetchval("DELETE FROM agents WHERE id = $1 RETURNING id", agent_id)
        except asyncpg.ForeignKeyViolationError:
            raise FailedPrecondition(
                f"agent {agent_id} is referenced by workflows, tasks or metrics and cannot be deleted"
            ) from None
        if deleted is None:
            raise NotFound(f"agent {agent_id} not found")

    async def record_beats(self, beats: Sequence[tuple[str, str, datetime]]) -> int:
        """Write many heartbeats in one statement; an older beat never overwrites a newer one."""
        if not beats:
            return 0
        ids, statuses, times = zip(*beats, strict=True)
        result: str = await self.pool.execute(
            """UPDATE agents AS a
                  SET status = v.status,
                      last_heartbeat = v.ts,
                      updated_at = CASE WHEN a.status IS DISTINCT FROM v.status
                                        THEN CURRENT_TIMESTAMP ELSE a.updated_at END
                 FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS v(id, status, ts)
                WHERE a.id = v.id AND (a.last_heartbeat IS NULL OR a.last_heartbeat <= v.ts)""",
            list(ids),
            list(statuses),
            list(times),
        )
        return int(result.split()[-1])

    async def mark_offline(self, silent_seconds: float) -> list[str]:
        """Mark agents without a heartbeat for `silent_seconds` offline; returns their ids."""
        rows = await self.pool.fetch(
            """UPDATE agents SET status = 'offline', updated_at = CURRENT_TIMESTAMP
                WHERE status IS DISTINCT FROM 'offline'
                  AND (last_heartbeat IS NULL
                       OR last_heartbeat < CURRENT_TIMESTAMP - make_interval(secs => $1))
            RETURNING id::text AS id""",
            float(silent_seconds),
        )
        return [r["id"] for r in rows]


def _taken(name: str) -> AlreadyExists:
    return AlreadyExists(f"an agent named {name!r} already exists")


def row_to_dict(row: Row) -> dict[str, Any]:
    return dict(row.items())
