"""The database password as its own secret (OSSA_DB_PASSWORD / OSSA_DB_PASSWORD_FILE, as the spec's
secrets section names it), against the real PostgreSQL (scram-sha-256 over TCP)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from ossa_runtime.db import create_pool
from ossa_runtime.settings import Settings


def without_password(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    password = parts.password or ""
    netloc = f"{parts.username}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), password


async def test_db_password_from_a_file(database_url: str, tmp_path: Path) -> None:
    url, password = without_password(database_url)
    assert password and password not in url
    (tmp_path / "db-password").write_text(password + "\n")
    settings = Settings.from_env(
        {"OSSA_DATABASE_URL": url, "OSSA_DB_PASSWORD_FILE": str(tmp_path / "db-password")}, db_pool_min=1
    )
    assert password not in repr(settings)
    pool = await create_pool(settings, service="test")
    try:
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def test_a_wrong_db_password_is_refused_without_echoing_it(database_url: str) -> None:
    url, _ = without_password(database_url)
    settings = Settings.from_env({"OSSA_DATABASE_URL": url, "OSSA_DB_PASSWORD": "wrong-password-123"})
    with pytest.raises(asyncpg.InvalidPasswordError) as caught:
        await create_pool(settings, service="test")
    assert "wrong-password-123" not in str(caught.value)
