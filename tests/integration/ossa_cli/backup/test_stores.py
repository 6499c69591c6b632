"""The datastore halves of `ossa backup`/`ossa restore` against real embedded servers: a Redis RDB
over SYNC loaded into a fresh data directory (and its AOF rebuilt), and qdrant-edge shards copied
while open, counted and restored."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import numpy as np
import pytest
import redis

from ossa_cli.backup import stores as backup_stores
from ossa_cli.embedded import serving
from ossa_cli.ports import free_port
from ossa_cli.valkey import EmbeddedValkey
from ossa_search import snapshot
from ossa_search.stores.base import Point
from ossa_search.stores.edge import EdgeStore


def test_redis_snapshot_restores_into_an_empty_data_dir(tmp_path: Path) -> None:
    source = EmbeddedValkey.in_data_dir(tmp_path / "a", free_port())
    with serving(source):
        client = redis.Redis(port=source.port)
        for i in range(500):
            client.set(f"ossa:k:{i}", i)
        client.hset("ossa:h", mapping={"a": "1"})
        client.expire("ossa:h", 3600)
        client.xadd("ossa:stream", {"x": "1"})
        client.select(2)
        client.set("other-db", "y")
        client.close()
        keys, version = backup_stores.redis_rdb(
            backup_stores.RedisTarget(source.host, source.port, "", ""), tmp_path / "dump.rdb"
        )
    assert keys == 503 and version
    backup_stores.restore_embedded_redis(tmp_path / "b", tmp_path / "dump.rdb", keys)
    assert not (tmp_path / "b" / "redis" / "dump.rdb").exists()
    restored = EmbeddedValkey.in_data_dir(tmp_path / "b", free_port())
    with serving(restored):  # the normal AOF configuration: the data came back through the AOF
        client = redis.Redis(port=restored.port)
        assert client.dbsize() == 502 and client.get("ossa:k:499") == b"499"
        assert 0 < client.ttl("ossa:h") <= 3600 and client.xlen("ossa:stream") == 1
        client.select(2)
        assert client.get("other-db") == b"y"
        client.close()


def test_redis_restore_checks_the_key_count(tmp_path: Path) -> None:
    source = EmbeddedValkey.in_data_dir(tmp_path / "a", free_port())
    with serving(source):
        client = redis.Redis(port=source.port)
        client.set("k", "v")
        client.close()
        keys, _ = backup_stores.redis_rdb(
            backup_stores.RedisTarget(source.host, source.port, "", ""), tmp_path / "d.rdb"
        )
    with pytest.raises(backup_stores.BackupError, match="loaded 1 keys, the backup recorded 2"):
        backup_stores.restore_embedded_redis(tmp_path / "b", tmp_path / "d.rdb", keys + 1)
    assert not (tmp_path / "b" / "redis").exists()


def test_open_shards_copy_count_and_restore(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rng = np.random.default_rng(7)
    ids = [str(uuid.uuid4()) for _ in range(40)]

    async def fill_and_copy() -> dict[str, int]:
        store = EdgeStore(data / "qdrant")
        await store.open()
        try:
            await store.upsert("agents", [Point(i, rng.random(768).astype(np.float32), {"agent_id": i}) for i in ids])
            return await asyncio.to_thread(snapshot.copy_embedded_vectors, data, tmp_path / "copy")
        finally:
            await store.close()

    counts = asyncio.run(fill_and_copy())
    assert counts == {"agents": 40, "workflows": 0, "knowledge": 0}
    target = tmp_path / "restored"
    snapshot.restore_embedded_vectors(target, tmp_path / "copy", counts)

    async def count() -> int:
        store = EdgeStore(target / "qdrant")
        await store.open()
        try:
            return await store.count("agents")
        finally:
            await store.close()

    assert asyncio.run(count()) == 40
    with pytest.raises(snapshot.SnapshotError, match="hold"):
        snapshot.restore_embedded_vectors(tmp_path / "other", tmp_path / "copy", {**counts, "agents": 41})
    assert not (tmp_path / "other" / "qdrant").exists()
