"""Session fixtures: real PostgreSQL and Redis (embedded, from the wheels), started once.

Set OSSA_TEST_DATABASE_URL / OSSA_TEST_REDIS_URL to run against servers you started yourself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("OSSA_TEST_DATABASE_URL"):
        yield url
        return
    from tests.servers import embedded_postgres

    with embedded_postgres(Path(tmp_path_factory.mktemp("pg"))) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("OSSA_TEST_REDIS_URL"):
        yield url
        return
    from tests.servers import embedded_valkey

    with embedded_valkey(Path(tmp_path_factory.mktemp("redis"))) as url:
        yield url
