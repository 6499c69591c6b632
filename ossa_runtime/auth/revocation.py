"""Revoked token ids: Redis for the fast check, PostgreSQL so a revocation outlives Redis.

`revoke` commits the jti to `revoked_tokens` first, then sets `ossa:token:revoked:{jti}` with a
TTL until the token's own expiry (after which the token is refused anyway). `is_revoked` reads
Redis; `ossa:tokens:revoked:synced` marks that Redis holds every unexpired revocation, and when it
is missing (a FLUSHALL, a fresh Redis) the next check copies them back from PostgreSQL first.
Without Redis the check asks PostgreSQL directly. A short in-process cache saves the round trip
for a token seen a moment ago; a revoked answer is cached until the token's expiry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ossa_runtime import keys
from ossa_runtime.errors import Unavailable

log = logging.getLogger("ossa.auth")
_CACHE_LIMIT = 50_000


class RevocationStore:
    """`revoke(jti, expires_at)` and `is_revoked(jti)`, shared by every process through Redis/PG."""

    def __init__(self, redis: aioredis.Redis, pool: Any = None, cache_seconds: float = 1.0) -> None:
        self.redis = redis
        self.pool = pool  # an asyncpg pool; None: Redis only (no survival of a flush)
        self.cache_seconds = cache_seconds
        self._clear_until: dict[str, float] = {}  # jti → monotonic time until "not revoked" is trusted
        self._revoked: set[str] = set()
        self._sync_lock = asyncio.Lock()
        self._synced: set[str] = set()
        self._synced_at = float("-inf")

    async def revoke(self, jti: str, expires_at: float | datetime) -> None:
        """Refuse the token `jti` from now on (until `expires_at`, when it expires anyway)."""
        if not jti:
            raise ValueError("jti: must not be empty")
        expires = expires_at if isinstance(expires_at, datetime) else datetime.fromtimestamp(expires_at, UTC)
        if self.pool is not None:
            await self.pool.execute(
                "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) "
                "ON CONFLICT (jti) DO UPDATE SET expires_at = GREATEST(revoked_tokens.expires_at, $2)",
                jti,
                expires,
            )
        ttl = int(expires.timestamp() - time.time()) + 1
        if ttl > 0:
            await self.redis.set(keys.token_revoked(jti), "1", ex=ttl)
        self._clear_until.pop(jti, None)
        self._revoked.add(jti)

    async def is_revoked(self, jti: str) -> bool:
        if jti in self._revoked:
            return True
        now = time.monotonic()
        if self._clear_until.get(jti, 0.0) > now:
            return False
        try:
            revoked = await self._check_redis(jti)
        except RedisError as err:
            log.warning("revocation check falls back to PostgreSQL", extra={"metadata": {"error": str(err)}})
            revoked = await self._check_postgres(jti)
        if revoked:
            self._revoked.add(jti)
        else:
            if len(self._clear_until) >= _CACHE_LIMIT:
                self._clear_until.clear()
            self._clear_until[jti] = now + self.cache_seconds
        return revoked

    async def _check_redis(self, jti: str) -> bool:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(keys.token_revoked(jti))
            pipe.exists(keys.TOKENS_REVOKED_SYNCED)
            revoked, synced = await pipe.execute()
        if revoked:
            return True
        if synced or self.pool is None:
            return False
        async with self._sync_lock:  # after a flush, many calls at once: one copy serves them all
            if time.monotonic() - self._synced_at > self.cache_seconds:
                self._synced = await self.sync()
                self._synced_at = time.monotonic()
            return jti in self._synced

    async def _check_postgres(self, jti: str) -> bool:
        if self.pool is None:
            raise Unavailable("cannot check whether the token was revoked: Redis is unreachable")
        try:
            found = await self.pool.fetchval("SELECT 1 FROM revoked_tokens WHERE jti = $1 AND expires_at > now()", jti)
        except Exception as err:
            raise Unavailable("cannot check whether the token was revoked: Redis and PostgreSQL fail") from err
        return found is not None

    async def sync(self) -> set[str]:
        """Copy every unexpired revocation from PostgreSQL to Redis, then mark Redis as synced."""
        if self.pool is None:
            return set()
        rows = await self.pool.fetch(
            "SELECT jti, EXTRACT(EPOCH FROM expires_at)::float8 AS exp FROM revoked_tokens WHERE expires_at > now()"
        )
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            for row in rows:
                pipe.set(keys.token_revoked(row["jti"]), "1", ex=max(1, int(row["exp"] - now) + 1))
            pipe.set(keys.TOKENS_REVOKED_SYNCED, "1")
            await pipe.execute()
        if rows:
            log.info("revocations restored to Redis", extra={"metadata": {"count": len(rows)}})
        return {row["jti"] for row in rows}

    async def prune(self) -> int:
        """Delete revocations of tokens that have expired anyway; returns how many."""
        if self.pool is None:
            return 0
        result = await self.pool.execute("DELETE FROM revoked_tokens WHERE expires_at <= now()")
        return int(str(result).rsplit(" ", 1)[-1] or 0)
