"""The vector store's half of `ossa backup` / `ossa restore`: export and import of the collections.

A running search service copies its embedded qdrant-edge shards itself (SearchService/Snapshot:
flushed, writes held while copying); a stopped platform's shards are copied file by file. Either
copy is opened to be counted. With OSSA_QDRANT_URL the points are scrolled out
(`QdrantClientStore.snapshot`, one `<collection>.jsonl` each) and upserted back (`restore_jsonl`).
A restore stages the shards next to `<data_dir>/qdrant` and swaps them in once their counts match.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import grpc

from ossa_runtime.settings import Settings


class SnapshotError(RuntimeError):
    """A vector export or import step failed; the message says which and why."""


def snapshot_embedded_vectors(
    settings: Settings, bearer: str, dest: Path, timeout: float = 300.0
) -> dict[str, int] | None:
    """Ask the running search service for a consistent copy of its shards (SearchService/Snapshot:
    it flushes each one and holds its writes while copying) and move it to dest/<collection>.
    None when the service cannot be asked (not running, or no token): copy the files instead."""
    from ossa.search.v1 import search_pb2, search_pb2_grpc
    from ossa_runtime import tls
    from ossa_runtime.auth.client import bearer_metadata

    if not bearer:
        return None

    async def ask() -> search_pb2.SnapshotResponse:
        async with tls.channel(settings, settings.search_target) as channel:
            stub = search_pb2_grpc.SearchServiceStub(channel)  # type: ignore[no-untyped-call]
            reply: search_pb2.SnapshotResponse = await stub.Snapshot(
                search_pb2.SnapshotRequest(), metadata=bearer_metadata(bearer), timeout=timeout
            )
            return reply

    try:
        reply = asyncio.run(ask())
    except grpc.aio.AioRpcError as err:
        if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED):
            return None
        raise SnapshotError(
            f"qdrant: the search service refused a snapshot: {err.code().name}: {err.details()}"
        ) from None
    snapshot = Path(reply.directory)
    try:
        for name in reply.points:
            shutil.move(str(snapshot / name), str(dest / name))
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)
    counts = {name: count_shard(dest / name) for name in reply.points}
    if counts != dict(reply.points):
        raise SnapshotError(
            f"qdrant: the snapshot holds {counts} points, the search service reported {dict(reply.points)}"
        )
    return counts


def copy_embedded_vectors(data_dir: Path, dest: Path) -> dict[str, int]:
    """Copy each collection's shard to dest/<collection>, then open the copies to count the points
    (a stopped platform, or no search service to ask)."""
    from ossa_search.stores.base import COLLECTIONS

    source = data_dir / "qdrant"
    present = [name for name in COLLECTIONS if (source / name / "edge_config.json").exists()]
    for name in present:
        shutil.copytree(source / name, dest / name)
    return {name: count_shard(dest / name) for name in present}


def count_shard(path: Path) -> int:
    """Open a copied shard (its WAL replays), count its points, flush and close it (its stored config untouched)."""
    import qdrant_edge as qe

    try:
        shard = qe.EdgeShard.load(str(path))
    except Exception as err:
        raise SnapshotError(f"qdrant: the shard copy {path.name} does not open: {err}") from None
    try:
        count = int(shard.count(qe.CountRequest(exact=True)))
        shard.flush()
        return count
    finally:
        shard.close()


def restore_embedded_vectors(data_dir: Path, source: Path, expected: dict[str, int]) -> None:
    root = data_dir / "qdrant"
    staged = root.with_name("qdrant.restoring")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    for name in expected:
        shutil.copytree(source / name, staged / name)
    counts = {name: count_shard(staged / name) for name in expected}
    if counts != expected:
        shutil.rmtree(staged, ignore_errors=True)
        raise SnapshotError(f"qdrant: the restored shards hold {counts} points, the backup recorded {expected}")
    swap_in(staged, root)


def dump_server_vectors(settings: Settings, dest: Path) -> dict[str, int]:
    from ossa_search.stores.base import COLLECTIONS
    from ossa_search.stores.client import QdrantClientStore

    async def run() -> dict[str, int]:
        store = QdrantClientStore(settings.qdrant_url, api_key=settings.qdrant_api_key)
        await store.open()
        try:
            counts = {}
            for name in COLLECTIONS:
                await store.snapshot(name, dest)
                counts[name] = sum(1 for _ in (dest / f"{name}.jsonl").open("rb"))
            return counts
        finally:
            await store.close()

    dest.mkdir(parents=True, exist_ok=True)
    return asyncio.run(run())


def restore_server_vectors(settings: Settings, source: Path, expected: dict[str, int]) -> None:
    from ossa_search.stores.client import QdrantClientStore

    async def run() -> None:
        store = QdrantClientStore(settings.qdrant_url, api_key=settings.qdrant_api_key)
        await store.open()
        try:
            for name, count in expected.items():
                await store.clear(name)
                await store.restore_jsonl(name, source / f"{name}.jsonl")
                if await store.count(name) != count:
                    raise SnapshotError(
                        f"qdrant: {name} holds {await store.count(name)} points after the restore, not {count}"
                    )
        finally:
            await store.close()

    asyncio.run(run())


def swap_in(staged: Path, live: Path) -> None:
    """Replace the directory `live` with `staged` (the old one kept aside until the rename is done)."""
    old = live.with_name(live.name + ".before-restore")
    shutil.rmtree(old, ignore_errors=True)
    if live.exists():
        live.rename(old)
    staged.rename(live)
    shutil.rmtree(old, ignore_errors=True)
