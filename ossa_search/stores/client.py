"""The vector store on a Qdrant server (`OSSA_QDRANT_URL`, e.g. http://qdrant:6335) with qdrant-client.

`QdrantClientStore(":memory:")` runs qdrant-client's in-process local mode instead: the same code
path, so the store's tests cover it, but brute-force Python search (about 0.6 s per filtered query
at 20k points): for tests only, never a default. Local mode ignores payload indexes and search
parameters (it warns when given them, so they are skipped there).

`snapshot()` writes `<dest>/<collection>.jsonl` (one point per line: id, vector, payload) read back
through the API, so a backup works without access to the server's disk; `restore_jsonl()` loads one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import AsyncQdrantClient, models

from ossa_runtime.errors import FailedPrecondition, InvalidArgument, Unavailable
from ossa_search.stores.base import (
    COLLECTIONS,
    CollectionSpec,
    Filter,
    Hit,
    Point,
    check_filter,
    check_id,
    check_limit,
    check_points,
    check_vector,
    is_datetime,
    spec_of,
)

SCHEMA = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "text": models.PayloadSchemaType.TEXT,
    "integer": models.PayloadSchemaType.INTEGER,
    "float": models.PayloadSchemaType.FLOAT,
    "bool": models.PayloadSchemaType.BOOL,
    "datetime": models.PayloadSchemaType.DATETIME,
}
# As the embedded store (ossa_search.stores.edge): int8 copies in RAM, 2x oversampling, float rescoring.
QUANTIZATION = models.ScalarQuantization(
    scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True)
)
APPROXIMATE = models.QuantizationSearchParams(rescore=True, oversampling=2.0)
EXACT = models.QuantizationSearchParams(ignore=True)


def client_filter(spec: CollectionSpec, flt: Filter | None) -> models.Filter | None:
    if flt is None:
        return None
    conditions: list[models.Condition] = []
    for key, value in flt.must.items():
        if isinstance(value, list):
            conditions.append(models.FieldCondition(key=key, match=models.MatchAny(any=list(value))))
        elif isinstance(value, float):
            conditions.append(models.FieldCondition(key=key, range=models.Range(gte=value, lte=value)))
        else:
            conditions.append(models.FieldCondition(key=key, match=models.MatchValue(value=value)))
    for key, (low, high) in flt.ranges.items():
        if is_datetime(spec, key):
            start = None if low is None else datetime.fromtimestamp(low, UTC)
            end = None if high is None else datetime.fromtimestamp(high, UTC)
            conditions.append(models.FieldCondition(key=key, range=models.DatetimeRange(gte=start, lte=end)))
        else:
            conditions.append(models.FieldCondition(key=key, range=models.Range(gte=low, lte=high)))
    return models.Filter(must=conditions)


class QdrantClientStore:
    """`VectorStore` on a Qdrant server, or on qdrant-client's local mode for ":memory:"."""

    def __init__(self, url: str, *, api_key: str = "", batch: int = 256, timeout: float = 10.0) -> None:
        self.local = url == ":memory:"
        if self.local:
            self._client = AsyncQdrantClient(location=":memory:")
        else:
            self._client = AsyncQdrantClient(url=url, api_key=api_key or None, timeout=int(timeout))
        self._url = url
        self._batch = batch
        self._state = "new"

    def _check_open(self) -> None:
        if self._state != "open":
            raise FailedPrecondition(f"the vector store is {self._state}: call open() first")

    async def open(self) -> None:
        if self._state == "open":
            return
        try:
            for spec in COLLECTIONS.values():
                await self._ensure(spec)
        except (OSError, ConnectionError, TimeoutError) as err:
            raise Unavailable(f"cannot reach Qdrant at {self._url}: {err}") from err
        self._state = "open"

    async def _ensure(self, spec: CollectionSpec) -> None:
        if not await self._client.collection_exists(spec.name):
            await self._client.create_collection(
                spec.name,
                vectors_config=models.VectorParams(size=spec.dim, distance=models.Distance.COSINE),
                quantization_config=None if self.local else QUANTIZATION,
            )
        else:
            info = await self._client.get_collection(spec.name)
            params = info.config.params.vectors
            size = params.size if isinstance(params, models.VectorParams) else None
            if size != spec.dim:
                raise FailedPrecondition(
                    f"Qdrant collection {spec.name!r} has vectors of size {size}, the platform needs {spec.dim}: "
                    "drop it and run `ossa reindex`"
                )
            if not self.local and set(spec.indexes) <= set(info.payload_schema):
                return
        if self.local:
            return  # local mode has no payload indexes (and warns when asked for them)
        for key, kind in spec.indexes.items():
            await self._client.create_payload_index(spec.name, key, field_schema=SCHEMA[kind], wait=True)

    async def close(self) -> None:
        if self._state == "closed":
            return
        self._state = "closed"
        await self._client.close()

    async def upsert(self, collection: str, points: Sequence[Point]) -> None:
        spec = spec_of(collection)
        rows = check_points(spec, points)
        self._check_open()
        for start in range(0, len(rows), self._batch):
            batch = [
                models.PointStruct(id=pid, vector=vector, payload=payload)
                for pid, vector, payload in rows[start : start + self._batch]
            ]
            await self._client.upsert(collection, points=batch, wait=True)

    async def delete(self, collection: str, ids: Sequence[str]) -> None:
        spec_of(collection)
        checked: list[models.ExtendedPointId] = [check_id(pid, f"ids[{i}]") for i, pid in enumerate(ids)]
        self._check_open()
        if checked:
            await self._client.delete(collection, points_selector=models.PointIdsList(points=checked), wait=True)

    async def search(
        self,
        collection: str,
        vector: np.ndarray,
        *,
        limit: int,
        filter: Filter | None = None,
        exact: bool = False,
        with_payload: bool = True,
    ) -> list[Hit]:
        spec = spec_of(collection)
        query = check_vector(spec, vector)
        flt = client_filter(spec, check_filter(spec, filter))
        check_limit(limit)
        self._check_open()
        params = None
        if not self.local:  # local mode is always exact, and warns about search parameters
            params = models.SearchParams(exact=exact, quantization=EXACT if exact else APPROXIMATE)
        response = await self._client.query_points(
            collection, query=query, limit=limit, query_filter=flt, with_payload=with_payload, search_params=params
        )
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in response.points]

    async def count(self, collection: str) -> int:
        spec_of(collection)
        self._check_open()
        return (await self._client.count(collection, exact=True)).count

    async def clear(self, collection: str) -> None:
        spec = spec_of(collection)
        self._check_open()
        await self._client.delete_collection(collection)
        await self._ensure(spec)

    async def snapshot(self, collection: str, dest: Path) -> Path:
        spec_of(collection)
        self._check_open()
        target = Path(dest) / f"{collection}.jsonl"
        if target.exists():
            raise InvalidArgument("dest", f"{target} already exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".jsonl.partial")
        offset: Any = None
        await asyncio.to_thread(partial.write_text, "", "utf-8")
        while True:
            records, offset = await self._client.scroll(
                collection, limit=self._batch, offset=offset, with_payload=True, with_vectors=True
            )
            lines = [
                json.dumps({"id": str(r.id), "vector": r.vector, "payload": r.payload or {}}, separators=(",", ":"))
                for r in records
            ]
            await asyncio.to_thread(_append, partial, lines)
            if offset is None:
                break
        partial.rename(target)
        return target

    async def restore_jsonl(self, collection: str, source: Path) -> int:
        """Upsert the points of a `snapshot()` file; returns how many."""
        total = 0
        batch: list[Point] = []
        text = await asyncio.to_thread(Path(source).read_text, "utf-8")
        for line in text.splitlines():
            row = json.loads(line)
            batch.append(Point(row["id"], np.asarray(row["vector"], dtype=np.float32), row["payload"]))
            if len(batch) >= self._batch:
                await self.upsert(collection, batch)
                total, batch = total + len(batch), []
        await self.upsert(collection, batch)
        return total + len(batch)


def _append(path: Path, lines: list[str]) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in lines)
