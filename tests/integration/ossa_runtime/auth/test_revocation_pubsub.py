"""Revocations reach every process at once through Redis pub/sub (ossa_runtime/auth/revocation.py).

Two RevocationStores on their own Redis clients stand for two service processes. Their "not revoked"
cache lasts 60 s here, so a revocation seen within a moment was delivered by the channel, not by
the cache expiring. The listener survives its connection being killed and a Redis that is down.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from ossa_cli.ports import free_port
from ossa_runtime import keys
from ossa_runtime.auth.revocation import RevocationStore
from ossa_runtime.errors import Unavailable
from ossa_runtime.settings import Settings

pytestmark = pytest.mark.integration
LONG_CACHE = 60.0  # far beyond any wait below: only the channel can make a cached answer change
SEEN_WITHIN = 1.0  # pub/sub delivery on 127.0.0.1 takes milliseconds; this is for a busy machine


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    """Seconds until `check()` is true; fails after `within` seconds."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < within, what
        await asyncio.sleep(0.005)
    return time.monotonic() - started


@pytest.fixture
async def stores(settings: Settings) -> AsyncIterator[tuple[RevocationStore, RevocationStore, aioredis.Redis]]:
    """(the revoking process's store, another process's listening store, an admin client)."""
    clients = [
        aioredis.Redis.from_url(settings.redis_url, decode_responses=True),
        aioredis.Redis.from_url(settings.redis_url),  # bytes: the listener decodes the jti itself
        aioredis.Redis.from_url(settings.redis_url, decode_responses=True),
    ]
    revoker = RevocationStore(clients[0], None, LONG_CACHE)
    other = RevocationStore(clients[1], None, LONG_CACHE)
    await clients[2].set(keys.TOKENS_REVOKED_SYNCED, "1")
    for store in (revoker, other):
        store.listen()
        assert not store.listening  # started by the first check
        assert not await store.is_revoked(secrets.token_hex(8))
        await eventually(subscribed(store, 1), 5, "the listener never subscribed")
    yield revoker, other, clients[2]
    await revoker.aclose()
    await other.aclose()
    for client in clients:
        await client.aclose()


def subscribed(store: RevocationStore, times: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return store.subscriptions >= times

    return check


def revoked(store: RevocationStore, jti: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await store.is_revoked(jti)

    return check


async def revoke_and_wait(revoker: RevocationStore, other: RevocationStore) -> float:
    """Revoke a jti `other` has cached as "not revoked"; seconds until `other` refuses it."""
    jti = secrets.token_hex(8)
    assert not await other.is_revoked(jti)  # cached as "not revoked" for LONG_CACHE
    await revoker.revoke(jti, time.time() + 300)
    return await eventually(revoked(other, jti), SEEN_WITHIN, "the other process still trusted a revoked token")


async def test_a_revocation_is_seen_by_another_process_at_once(
    stores: tuple[RevocationStore, RevocationStore, aioredis.Redis],
) -> None:
    revoker, other, _ = stores
    await revoke_and_wait(revoker, other)
    # Tokens nobody revoked keep their cached answer.
    jti = secrets.token_hex(8)
    assert not await other.is_revoked(jti)
    await revoker.revoke(secrets.token_hex(8), time.time() + 300)
    await asyncio.sleep(0.05)
    assert not await other.is_revoked(jti)


async def test_the_listener_resubscribes_after_its_connection_is_killed(
    stores: tuple[RevocationStore, RevocationStore, aioredis.Redis],
) -> None:
    revoker, other, admin = stores
    before = other.subscriptions
    assert await admin.client_kill_filter(_type="pubsub") >= 2  # both listeners lose their connection
    await eventually(subscribed(other, before + 1), 10, "the listener did not resubscribe")
    # After a reconnection the "not revoked" cache starts empty (messages may have been missed)...
    jti = secrets.token_hex(8)
    assert not await other.is_revoked(jti)
    # ...and later revocations are seen at once again.
    await revoke_and_wait(revoker, other)
    # Killed again, while a revocation is published during the gap: at worst seen when the cache
    # expires; here the resubscription empties the cache, so it is seen as soon as it is back.
    await admin.client_kill_filter(_type="pubsub")
    await revoker.revoke(jti, time.time() + 300)
    await eventually(subscribed(other, before + 2), 10, "the listener did not resubscribe twice")
    assert await other.is_revoked(jti)


async def test_redis_down_never_stops_the_listener(caplog: pytest.LogCaptureFixture) -> None:
    dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", decode_responses=True)
    store = RevocationStore(dead, None, LONG_CACHE)
    try:
        with caplog.at_level(logging.WARNING, logger="ossa.auth"):
            store.listen()
            with pytest.raises(Unavailable, match="Redis is unreachable"):  # no PostgreSQL either here
                await store.is_revoked(secrets.token_hex(8))
            await asyncio.sleep(1.0)  # several reconnection attempts
        assert store.listening
        warnings = [r for r in caplog.records if "revocation listener cannot reach Redis" in r.getMessage()]
        assert len(warnings) == 1  # one warning, not one per attempt
    finally:
        await store.aclose()
        await dead.aclose()
    assert not store.listening
