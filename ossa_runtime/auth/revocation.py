"""Revoked token ids: Redis for the fast check, PostgreSQL so a revocation outlives Redis.

`revoke` commits the jti to `revoked_tokens` first, then sets `ossa:token:revoked:{jti}` with a
TTL until the token's own expiry (after which the token is refused anyway). `is_revoked` reads
Redis; `ossa:tokens:revoked:synced` marks that Redis holds every unexpired revocation, and when it
is missing (a FLUSHALL, a fresh Redis) the next check copies them back from PostgreSQL first.
Without Redis the check asks PostgreSQL directly. A short in-process cache saves the round trip
for a token seen a moment ago; a revoked answer is kept in memory (a bounded set).

Every revocation is also published on `ossa:auth:revoked`. A store told to `listen()` (every
service's, through AuthInterceptor.attach) follows that channel in one background task: a message
drops the jti's cached "not revoked" answer, so the next check asks Redis (where `revoke` set the key
before publishing) and the other processes refuse the token as soon as the message arrives rather
than when their cache expires. Nothing depends on it: a message lost while the listener
reconnects (with backoff; Redis down never stops the service, a warning is logged at most every
WARN_EVERY_SECONDS) is covered by the cache's own expiry, and each (re)subscription empties the
"not revoked" cache. The per-call check never awaits the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ossa_runtime import keys
from ossa_runtime.errors import Unavailable

log = logging.getLogger("ossa.auth")
_CACHE_LIMIT = 50_000
RETRY_MIN_SECONDS = 0.1  # the listener's first wait before resubscribing, doubled up to RETRY_MAX_SECONDS
RETRY_MAX_SECONDS = 5.0
WARN_EVERY_SECONDS = 10.0  # at most one "listener cannot reach Redis" warning this often


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
        self._listening = False  # listen() was called and aclose() was not
        self._listener: asyncio.Task[None] | None = None
        self._warned_at = -math.inf
        self.subscriptions = 0  # how many times the listener (re)subscribed
        self._drops = 0  # messages and subscriptions so far: a check spanning one caches nothing

    def listen(self) -> None:
        """Follow revocations made by other processes (module docstring). The listener starts on
        the first check (a process that never checks a token opens no subscription; what was cached
        before it subscribed is dropped then). Stop it with `aclose()`."""
        self._listening = True

    @property
    def listening(self) -> bool:
        """The listener task runs (subscribed, or waiting to resubscribe)."""
        return self._listener is not None and not self._listener.done()

    async def aclose(self) -> None:
        """Stop the listener (idempotent); the Redis client and pool stay open (their owner closes them)."""
        self._listening = False
        listener, self._listener = self._listener, None
        if listener is not None and not listener.done():
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    def _start_listener(self) -> None:
        if self._listener is None and self._listening:
            self._listener = asyncio.get_running_loop().create_task(self._listen(), name="revocation-listener")

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
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(keys.token_revoked(jti), "1", ex=ttl)
                pipe.publish(keys.TOKENS_REVOKED_CHANNEL, jti)  # the other processes drop their cache
                await pipe.execute()
        self._mark_revoked(jti)

    def _mark_revoked(self, jti: str) -> None:
        self._clear_until.pop(jti, None)
        if len(self._revoked) >= _CACHE_LIMIT:
            self._revoked.clear()  # forgetting costs a round trip only: Redis/PostgreSQL still know
        self._revoked.add(jti)

    async def is_revoked(self, jti: str) -> bool:
        if self._listener is None:
            self._start_listener()
        if jti in self._revoked:
            return True
        now = time.monotonic()
        if self._clear_until.get(jti, 0.0) > now:
            return False
        drops = self._drops
        try:
            revoked = await self._check_redis(jti)
        except RedisError as err:
            log.warning("revocation check falls back to PostgreSQL", extra={"metadata": {"error": str(err)}})
            revoked = await self._check_postgres(jti)
        if revoked:
            self._mark_revoked(jti)
        elif drops == self._drops:  # else a revocation may have been published since Redis answered
            if len(self._clear_until) >= _CACHE_LIMIT:
                self._clear_until.clear()
            self._clear_until[jti] = now + self.cache_seconds
        return revoked

    async def _listen(self) -> None:
        """Subscribe to the revocation channel until cancelled; resubscribe after any failure."""
        delay = RETRY_MIN_SECONDS
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(keys.TOKENS_REVOKED_CHANNEL)
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":  # also after redis-py reconnected by itself
                        self._on_subscribed()
                        delay = RETRY_MIN_SECONDS
                    elif message["type"] == "message":  # the next check asks Redis (SET before PUBLISH)
                        data = message["data"]
                        self._drops += 1
                        self._clear_until.pop(data.decode() if isinstance(data, bytes) else str(data), None)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # RedisError, OSError, anything: the service keeps running
                self._warn(err)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)

    def _on_subscribed(self) -> None:
        # Revocations published while unsubscribed were missed: re-check every cached token.
        self._clear_until.clear()
        self._drops += 1
        self.subscriptions += 1
        if self.subscriptions > 1:
            log.info("revocation listener resubscribed", extra={"metadata": {"channel": keys.TOKENS_REVOKED_CHANNEL}})

    def _warn(self, err: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning(
                "revocation listener cannot reach Redis: other processes' revocations are seen when the cache expires",
                extra={"metadata": {"error": f"{type(err).__name__}: {err}"}},
            )

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
