"""Disaster recovery for real: `ossa backup` of a running platform, wipe, `ossa restore`, compare.

One platform (its own data directory) gets agents, a workflow run to completion by a raw gRPC
agent, and a knowledge entry; `ossa backup` archives it while it runs; the platform stops and its
data directory is deleted; `ossa restore` brings it back into the empty directory. Every row of
the domain tables, every persistent Redis key and the search results (vectors) must match. A
corrupted copy of the archive is refused and changes nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from ossa_cli.embedded import serving
from ossa_cli.ports import free_port
from ossa_cli.postgres import EmbeddedPostgres
from ossa_cli.valkey import EmbeddedValkey
from tests.e2e.platform import Platform, make_platform, ossa_executable, request
from tests.e2e.test_rest_agents import register
from tests.e2e.test_rest_orchestration import create_workflow, publish

pytestmark = pytest.mark.e2e

TABLES = (
    "agents",
    "workflows",
    "executions",
    "tasks",
    "task_attempts",
    "knowledge_documents",
    "knowledge_chunks",
    "api_keys",
)
AGENT_QUERY = {"query": "is the mountain about to erupt", "limit": 3}
KNOWLEDGE_QUERY = {"query": "clean limescale out of the coffee maker", "limit": 3}


# State of a stopped data directory ---------------------------------------------------------------


@contextmanager
def stopped_stores(data_dir: Path) -> Iterator[tuple[str, redis.Redis]]:
    """The data directory's PostgreSQL (URL) and Redis (client), started on free ports."""
    pg = EmbeddedPostgres.in_data_dir(data_dir, free_port())
    valkey = EmbeddedValkey.in_data_dir(data_dir, free_port())
    with serving(pg, timeout=60) as live_pg, serving(valkey):
        client = redis.Redis(host=valkey.host, port=valkey.port)
        try:
            yield live_pg.url, client
        finally:
            client.close()


def table_rows(url: str) -> dict[str, list[str]]:
    async def fetch() -> dict[str, list[str]]:
        conn = await asyncpg.connect(url)
        try:
            return {
                t: [r[0] for r in await conn.fetch(f"SELECT to_jsonb(x)::text FROM {t} x ORDER BY 1")] for t in TABLES
            }
        finally:
            await conn.close()

    return asyncio.run(fetch())


def persistent_keys(client: redis.Redis) -> dict[bytes, bytes]:
    """Every key without a TTL and its DUMP (keys with a TTL may expire between two looks)."""
    out = {}
    for key in client.scan_iter(count=1000):
        if client.ttl(key) == -1:
            out[key] = client.dump(key)
    return out


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "ossa-up.lock" and p.parent.name != "logs"
    }


# Workload ----------------------------------------------------------------------------------------


def run_workflow(platform: Platform) -> str:
    from ossa.orchestrator.v1 import orchestrator_pb2 as pb
    from ossa.orchestrator.v1 import orchestrator_pb2_grpc
    from tests.integration.orchestration import struct

    agent = register(platform, capabilities=["summarize", "review"])
    workflow = create_workflow(platform)
    publish(platform, workflow["id"])
    status, _, started = request(platform.gateway, "POST", "/api/v1/orchestrate", {"workflow_id": workflow["id"]})
    assert status == 202, started

    async def work() -> None:
        async with platform.channel() as channel:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
            call = stub.Work()
            await call.write(pb.WorkRequest(agent_id=agent["id"], slots=1))
            for _ in range(2):
                async with asyncio.timeout(30):
                    message = await call.read()
                a = message.assignment
                await stub.CompleteTask(
                    pb.CompleteTaskRequest(
                        task_id=a.task_id, fencing_token=a.fencing_token, output=struct({"step": a.step_id})
                    )
                )
            call.cancel()

    asyncio.run(work())
    execution_id = str(started["execution_id"])
    wait_for(lambda: request(platform.gateway, "GET", f"/api/v1/executions/{execution_id}")[2]["status"] == "completed")
    return execution_id


def wait_for(check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def search_state(platform: Platform) -> dict[str, Any]:
    status, _, agents = request(platform.gateway, "POST", "/api/v1/agents/search", AGENT_QUERY)
    assert status == 200, agents
    status, _, knowledge = request(platform.gateway, "POST", "/api/v1/knowledge/search", KNOWLEDGE_QUERY)
    assert status == 200, knowledge
    return {
        "agents": [(r["agent"]["id"], round(r["score"], 5)) for r in agents["results"]],
        "knowledge": [(r["chunk"]["document_id"], round(r["score"], 5)) for r in knowledge["results"]],
    }


def ossa(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ossa_executable(), *args], env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )


# The test ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    env = {"OSSA_RATELIMIT_ANONYMOUS": "0", "OSSA_OFFLINE_AFTER_SECONDS": "3600"}
    p = make_platform(tmp_path_factory.mktemp("dr") / "data", env)
    p.start()
    yield p
    p.stop()


def test_backup_wipe_restore_brings_everything_back(platform: Platform, tmp_path: Path) -> None:
    volcano = register(platform, name="volcano-watch", metadata={"description": "Predicts volcano eruptions"})
    register(platform, name="table-booker", metadata={"description": "Books restaurant tables for dinner"})
    execution_id = run_workflow(platform)
    knowledge = {"content": "To descale the espresso machine, run citric acid through the boiler.", "source": "dr"}
    status, _, added = request(platform.gateway, "POST", "/api/v1/knowledge", knowledge)
    assert status == 201, added
    wait_for(lambda: any(a == volcano["id"] for a, _ in search_state(platform)["agents"]))
    searched = search_state(platform)
    assert searched["knowledge"] and searched["knowledge"][0][0] == added["document_id"]

    # The platform's state as the backup sees it (the platform is idle: no agent beats, nothing queued).
    password = (platform.data_dir / "postgres" / "password").read_text().strip()
    url = f"postgresql://ossa:{password}@127.0.0.1:{platform.port('postgres')}/ossa_isolated"
    rows = table_rows(url)
    assert rows["executions"] and rows["tasks"] and len(rows["agents"]) >= 3 and rows["knowledge_chunks"]
    live_redis = redis.Redis(port=platform.port("redis"))
    keys = persistent_keys(live_redis)
    live_redis.close()

    upload = tmp_path / "uploaded"
    env = {**platform.env, "OSSA_BACKUP_UPLOAD_DIR": str(upload)}
    done = ossa(env, "backup", "--data-dir", str(platform.data_dir), "--out", str(tmp_path / "backups"))
    assert done.returncode == 0, done.stderr
    archive = Path(done.stdout.strip().splitlines()[-1])
    assert archive.is_file() and archive.name.startswith("ossa-backup-") and archive.name.endswith(".tar.gz")
    assert (upload / archive.name).read_bytes() == archive.read_bytes()
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        names = set(tar.getnames())
    assert {"postgres/ossa_isolated.dump", "redis/dump.rdb", "secrets/jwt.secret"} <= names
    assert set(manifest["members"]) == names - {"manifest.json"}
    assert manifest["qdrant"]["backend"] == "embedded" and manifest["qdrant"]["points"]["agents"] >= 3
    assert manifest["qdrant"]["snapshot"] == "search service"  # consistent: copied by the running owner
    assert not any((platform.data_dir / "qdrant-snapshots").iterdir())  # its copy was moved, not left behind
    assert manifest["postgres"]["rows"]["executions"] == len(rows["executions"])

    assert platform.stop() == 0
    shutil.rmtree(platform.data_dir)

    restored = ossa(platform.env, "restore", str(archive), "--data-dir", str(platform.data_dir))
    assert restored.returncode == 0, restored.stderr
    with stopped_stores(platform.data_dir) as (restored_url, client):
        assert table_rows(restored_url) == rows
        assert persistent_keys(client) == keys

    # A corrupted copy is refused before anything is touched.
    before = tree_digest(platform.data_dir)
    broken = tmp_path / "broken.tar.gz"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    broken.write_bytes(bytes(data))
    refused = ossa(platform.env, "restore", str(broken), "--data-dir", str(platform.data_dir))
    assert refused.returncode == 2, refused.stderr
    assert "corrupt" in refused.stderr and "nothing was restored" in refused.stderr
    assert tree_digest(platform.data_dir) == before

    platform.start()
    assert search_state(platform) == searched
    status, _, execution = request(platform.gateway, "GET", f"/api/v1/executions/{execution_id}")
    assert status == 200 and execution["status"] == "completed", execution
    status, _, agent = request(platform.gateway, "GET", f"/api/v1/agents/{volcano['id']}")
    assert status == 200 and agent["name"] == "volcano-watch", agent


def test_restore_refuses_a_running_platform(platform: Platform, tmp_path: Path) -> None:
    done = ossa(platform.env, "backup", "--data-dir", str(platform.data_dir), "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    archive = done.stdout.strip().splitlines()[-1]
    refused = ossa(platform.env, "restore", archive, "--data-dir", str(platform.data_dir))
    assert refused.returncode == 2 and "stop the platform" in refused.stderr, refused.stderr
