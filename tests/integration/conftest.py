"""Integration fixtures: a fresh database and Redis db per test module on the session's real servers."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis

from ossa_runtime.settings import Settings
from tests.auth import TEST_JWT_SECRET

pytestmark = pytest.mark.integration


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="module")
async def database_url(postgres_url: str) -> AsyncIterator[str]:
    """A new, empty database for this module (dropped afterwards)."""
    name = f"test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield _with_database(postgres_url, name)
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="module")
async def module_redis_url(redis_url: str) -> AsyncIterator[str]:
    """Redis db 1, flushed before the module runs."""
    url = urlunsplit(urlsplit(redis_url)._replace(path="/1"))
    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
    yield url


@pytest.fixture(scope="module")
def settings(database_url: str, module_redis_url: str) -> Settings:
    return Settings.from_env(
        {},
        database_url=database_url,
        redis_url=module_redis_url,
        jwt_secret=TEST_JWT_SECRET,  # tests send tokens signed with it (tests/auth.py)
        heartbeat_flush_seconds=0.1,
        offline_sweep_seconds=0.2,
        health_probe_seconds=0.2,
        shutdown_grace_seconds=1.0,
    )
