"""Helpers for the bad-input tests (test_rest_limits.py, test_grpc_limits.py): what is stored, a
workflow to run, and whether the platform still answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import asyncpg

from tests.e2e.platform import Platform, request
from tests.e2e.test_rest_orchestration import create_workflow, publish

# Rows a refused request could have written (metrics are checked on their own).
TABLES = ("agents", "workflows", "executions", "tasks", "task_attempts", "knowledge_documents", "api_keys")
Snapshot = Callable[[], Awaitable[dict[str, int]]]


@asynccontextmanager
async def row_counts(platform: Platform) -> AsyncIterator[Snapshot]:
    """A function returning the row count of each table in TABLES, for before/after comparisons."""
    conn = await asyncpg.connect(platform.database_url())

    async def snapshot() -> dict[str, int]:
        return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}

    try:
        yield snapshot
    finally:
        await conn.close()


def published_workflow(platform: Platform) -> str:
    """A published workflow's id, so that refused executions are refused for their own fault."""
    workflow = create_workflow(platform)
    publish(platform, workflow["id"])
    return str(workflow["id"])


def assert_still_answering(platform: Platform) -> None:
    """Every service behind Envoy answers a plain request."""
    for path in ("/api/v1/health", "/api/v1/agents?limit=1", "/api/v1/workflows?limit=1", "/api/v1/executions?limit=1"):
        status, _, body = request(platform.gateway, "GET", path)
        assert status == 200, (path, body)
    status, _, body = request(platform.gateway, "POST", "/api/v1/agents/search", {"query": "anything"})
    assert status == 200, body
    status, _, body = request(platform.gateway, "GET", "/api/v1/metrics?metric_name=none")
    assert status == 200, body


def restarts_and_bugs(platform: Platform) -> list[str]:
    """Lines in which `ossa up` restarted a part that exited (ossa_cli/supervisor.py), or a service
    logged an unhandled error (what a caller sees as a 500, ossa_runtime/interceptors.py)."""
    found = []
    for log in [platform.output, *sorted((platform.data_dir / "logs").glob("*.log"))]:
        text = log.read_text(errors="replace") if log.exists() else ""
        found += [line for line in text.splitlines() if "; restart " in line or '"unhandled error in ' in line]
    return found


@contextmanager
def no_crashes(platform: Platform) -> Iterator[None]:
    """Fails if a part of the platform exited or a service hit a bug (a 500) meanwhile."""
    before = restarts_and_bugs(platform)
    yield
    assert restarts_and_bugs(platform) == before, "bad input crashed a part of the platform or made a 500"
