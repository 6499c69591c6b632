"""Agent presence in Redis: the registry set, info hashes, status and heartbeat keys.

Redis is a fast view; PostgreSQL stays the system of record. Every write here is best effort
from the caller's point of view (the row is already committed) and `rebuild()` restores the view
from PostgreSQL after Redis was flushed or restarted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from ossa_runtime import keys
from registry_svc.groups import Group

# One round trip per beat: refresh heartbeat + status only if the agent is registered.
# KEYS: registry set, heartbeat key, status key, info hash. ARGV: id, timestamp, status, ttl, load.
_BEAT = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', tonumber(ARGV[4]))
redis.call('SET', KEYS[3], ARGV[3])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[4], 'load', ARGV[5]) end
return 1
"""


class Presence:
    def __init__(self, redis: aioredis.Redis, heartbeat_ttl: int, linger: float = 0.0) -> None:
        self.redis = redis
        self.ttl = heartbeat_ttl
        self._beat = redis.register_script(_BEAT)
        # Agents registered together are published together: one MULTI/EXEC for the batch.
        self.registers: Group[dict[str, Any], None] = Group("publish", self._register_many, linger=linger)

    async def register(self, row: dict[str, Any]) -> None:
        await self.registers.submit(row)

    async def _register_many(self, rows: list[dict[str, Any]]) -> list[BaseException | None]:
        async with self.redis.pipeline(transaction=True) as pipe:
            for row in rows:
                agent_id = row["id"]
                beat = row["last_heartbeat"]
                pipe.sadd(keys.AGENTS_REGISTRY, agent_id)
                pipe.hset(keys.agent_info(agent_id), mapping=_info(row))  # type: ignore[arg-type]
                pipe.set(keys.agent_status(agent_id), row["status"])
                if beat is not None:
                    pipe.set(keys.agent_heartbeat(agent_id), beat.isoformat(), ex=self.ttl)
            await pipe.execute()
        return [None] * len(rows)

    async def unregister(self, agent_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.srem(keys.AGENTS_REGISTRY, agent_id)
            pipe.delete(keys.agent_info(agent_id), keys.agent_status(agent_id), keys.agent_heartbeat(agent_id))
            await pipe.execute()

    async def beat(self, agent_id: str, at: datetime, status: str, load: float | None) -> bool:
        """Refresh the agent's heartbeat; False if Redis doesn't know the agent."""
        keys_ = [
            keys.AGENTS_REGISTRY,
            keys.agent_heartbeat(agent_id),
            keys.agent_status(agent_id),
            keys.agent_info(agent_id),
        ]
        args: list[str | int] = [agent_id, at.isoformat(), status, self.ttl, "" if load is None else repr(load)]
        return bool(await self._beat(keys=keys_, args=args))

    async def count_live(self, batch: int = 500) -> int:
        """Registered agents whose heartbeat key has not expired and whose status is not offline
        (ossa_agents_active): SSCAN of the registry set, then one MGET per `batch` agents."""
        agent_ids = list({agent_id async for agent_id in self.redis.sscan_iter(keys.AGENTS_REGISTRY, count=batch)})
        live = 0
        for start in range(0, len(agent_ids), batch):
            chunk = agent_ids[start : start + batch]
            values = await self.redis.mget([k for a in chunk for k in (keys.agent_heartbeat(a), keys.agent_status(a))])
            pairs = zip(values[::2], values[1::2], strict=True)
            live += sum(1 for beat, status in pairs if beat is not None and status != "offline")
        return live

    async def mark_offline(self, agent_ids: Iterable[str]) -> None:
        ids = list(agent_ids)
        if not ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for agent_id in ids:
                pipe.set(keys.agent_status(agent_id), "offline")
            await pipe.execute()

    async def rebuild(self, rows: Iterable[dict[str, Any]]) -> int:
        """Re-add every agent in `rows` to the registry set and info hashes (idempotent)."""
        count = 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for row in rows:
                pipe.sadd(keys.AGENTS_REGISTRY, row["id"])
                pipe.hset(keys.agent_info(row["id"]), mapping=_info(row))  # type: ignore[arg-type]
                pipe.set(keys.agent_status(row["id"]), row["status"])
                count += 1
            await pipe.execute()
        return count


def _info(row: dict[str, Any]) -> dict[str, str]:
    return {
        "id": row["id"],
        "name": row["name"],
        "type": row["type"],
        "version": row["version"],
        "capabilities": json.dumps(row["capabilities"]),
        "created_at": row["created_at"].isoformat(),
    }
