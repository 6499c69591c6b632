"""PostgreSQL access shared by every service: the asyncpg pool and versioned migrations.

Migrations are `migrations/NNNN_name.sql`, applied in order at service start-up, each in its own
transaction, under a PostgreSQL advisory lock so two services starting at once apply each exactly
once. `schema_migrations` records what ran, with a checksum so an edited migration is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

import asyncpg

from ossa_runtime.metrics import query_logger
from ossa_runtime.settings import Settings, SettingsError

log = logging.getLogger("ossa.db")

# Any fixed 64-bit number that no other application on the same database uses.
MIGRATION_LOCK_ID = 0x05_5A_00_01


class MigrationError(RuntimeError):
    """The database's schema history disagrees with the code's migrations."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    out = []
    for entry in resources.files("ossa_runtime").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            out.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    out.sort(key=lambda m: m.version)
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions: {versions}")
    return out


async def migrate(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[int]:
    """Apply the pending migrations; returns the versions applied by this call."""
    migrations = load_migrations() if migrations is None else migrations
    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version INT PRIMARY KEY,
                   name TEXT NOT NULL,
                   checksum TEXT NOT NULL,
                   applied_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP)"""
        )
        done = {
            r["version"]: r["checksum"] for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        for m in migrations:
            if m.version in done:
                if done[m.version] != m.checksum:
                    raise MigrationError(f"migration {m.version:04d}_{m.name} was changed after it was applied")
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    m.version,
                    m.name,
                    m.checksum,
                )
            log.info("applied migration", extra={"metadata": {"version": m.version, "name": m.name}})
            applied.append(m.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return applied


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _reset(conn: asyncpg.Connection) -> None:
    """On release to the pool: roll back a transaction left open, and nothing else. asyncpg's default
    reset costs a round trip per release (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL); the
    services keep no session state (migrations unlock their advisory lock themselves)."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


# A pool for a service's hot statements, planned once per connection instead of at every call.
# PostgreSQL re-plans a prepared statement whose generic plan it estimates dearer than the custom
# ones, and did so at every call for the orchestrator's start statement (unnest of arrays): 1.1-1.4
# ms of planning for 0.5-0.8 ms of execution, about 0.8 ms of PostgreSQL CPU per REST start. A
# generic plan is made from the statistics of its first use (an empty table at start-up), so
# sequential scans are priced out too: every table such a statement reads must be reached by an
# index (tests/integration/orchestrator_svc/test_queue_heads.py reads the plans it runs).
GENERIC_PLANS = {"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off"}


async def create_pool(
    settings: Settings,
    *,
    wait_seconds: float = 30.0,
    service: str = "",
    generic_plans: bool = False,
    max_size: int | None = None,
) -> asyncpg.Pool:
    """Connect (retrying while the server starts), run migrations, return the pool.

    Every query on the pool's connections is timed into ossa_db_query_duration_seconds, labelled
    with `service` (default: OSSA_SERVICE_NAME without its `ossa-` prefix). `generic_plans`: the
    connections run GENERIC_PLANS, for statements checked to plan well that way; such a pool is a
    service's second one, so it leaves the migrations to the first. `max_size`: at most
    that many connections (default OSSA_DB_POOL_MAX).
    """
    record_query = query_logger(service or settings.service_name.removeprefix("ossa-"))

    async def init(conn: asyncpg.Connection) -> None:
        await _init_connection(conn)
        conn.add_query_logger(record_query)

    if not settings.database_url:
        raise SettingsError("OSSA_DATABASE_URL is not set (`ossa up` sets it for the services it starts)")
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                settings.database_url,
                password=settings.db_password or None,  # OSSA_DB_PASSWORD(_FILE) wins over the URL's
                min_size=min(settings.db_pool_min, max_size or settings.db_pool_max),
                max_size=max_size or settings.db_pool_max,
                init=init,
                reset=_reset,
                command_timeout=30,
                server_settings=GENERIC_PLANS if generic_plans else None,
            )
            break
        except (OSError, asyncpg.CannotConnectNowError) as err:
            if time.monotonic() > deadline:
                raise
            log.info("waiting for PostgreSQL", extra={"metadata": {"error": str(err)}})
            await asyncio.sleep(0.25)
    if not generic_plans:  # a second pool of a service that already migrated with its first
        async with pool.acquire() as conn:
            await migrate(conn)
    return pool


async def ping(pool: asyncpg.Pool, timeout: float) -> Any:
    async with pool.acquire(timeout=timeout) as conn:
        return await conn.fetchval("SELECT 1", timeout=timeout)
