"""The vector store contract: the spec's collections, points, hits, filters and validation.

Collections (spec "Qdrant Collections"): `agents` and `workflows` at 768 dimensions, `knowledge` at
1536, cosine distance, with their payload fields indexed. Vectors from a smaller model are
zero-padded to the collection's size (`ossa_search.embedders.base.fit`), which keeps cosine exact.

Payload conventions both backends share:
- `datetime` fields (knowledge `timestamp`) are stored as RFC 3339 strings in UTC; a point may give
  them as a `datetime`, an RFC 3339 string or epoch seconds. Range filters on them take epoch
  seconds.
- `Filter.must` matches a keyword/integer/bool field exactly, or any of a list of strings (a field
  holding a list matches when any element does); `Filter.ranges` bounds float, integer and
  datetime fields, both ends inclusive, `None` meaning open.

Backends: `EdgeStore` (ossa_search.stores.edge, embedded, default) and `QdrantClientStore`
(ossa_search.stores.client, a Qdrant server at `OSSA_QDRANT_URL`; ":memory:" runs qdrant-client's
in-process mode, for tests); `ossa_search.stores.factory.open_store(settings)` picks one. Bad input
raises `ossa_runtime.errors.InvalidArgument` naming the field.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ossa_runtime.errors import InvalidArgument

# Payload index kinds; "text" is a full-text index (tokenised), "keyword" an exact one.
KINDS = frozenset({"keyword", "text", "integer", "float", "bool", "datetime"})
MatchValue = str | int | float | bool | list[str]


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    dim: int
    # field -> index kind (KINDS); fields not listed are stored but not indexed (e.g. JSON metadata).
    indexes: dict[str, str]
    distance: str = "cosine"


COLLECTIONS: dict[str, CollectionSpec] = {
    spec.name: spec
    for spec in (
        CollectionSpec(
            "agents",
            768,
            {
                "agent_id": "keyword",
                "agent_type": "keyword",
                "capabilities": "keyword",  # spec: text[]; exact names, so keyword (any-of match)
                "description": "text",
                "version": "keyword",
                "status": "keyword",  # added: searches filter on it
                "name": "keyword",
            },
        ),
        CollectionSpec(
            "workflows",
            768,
            {
                "workflow_id": "keyword",
                "name": "text",
                "description": "text",
                "tags": "keyword",
                "complexity": "float",
                "status": "keyword",
            },
        ),
        CollectionSpec(
            "knowledge",
            1536,
            {
                "content": "text",
                "source": "keyword",
                "timestamp": "datetime",
                "relevance_score": "float",
                # added: one knowledge entry is several chunks; delete/filter them together.
                "document_id": "keyword",
                "chunk": "integer",
            },
        ),
    )
}


@dataclass(frozen=True)
class Point:
    id: str  # a UUID
    vector: np.ndarray
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class Filter:
    must: dict[str, MatchValue] = field(default_factory=dict)
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)


class VectorStore(Protocol):
    async def open(self) -> None:
        """Create missing collections and their payload indexes."""

    async def upsert(self, collection: str, points: Sequence[Point]) -> None: ...

    async def delete(self, collection: str, ids: Sequence[str]) -> None: ...

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
        """The `limit` nearest points, best first; their payloads only if `with_payload` (else {}): a
        caller that reads its rows from PostgreSQL needs the ids alone, and payloads cost a conversion
        each (knowledge chunks carry their text)."""

    async def count(self, collection: str) -> int: ...

    async def clear(self, collection: str) -> None: ...

    async def snapshot(self, collection: str, dest: Path) -> Path:
        """Write the collection's files for a backup under `dest`; returns what was written."""

    async def close(self) -> None:
        """Flush and release; idempotent."""


# Validation shared by the backends ---------------------------------------------------------------


def spec_of(collection: str) -> CollectionSpec:
    spec = COLLECTIONS.get(collection)
    if spec is None:
        raise InvalidArgument("collection", f"unknown collection {collection!r}; use one of {sorted(COLLECTIONS)}")
    return spec


def check_vector(spec: CollectionSpec, vector: np.ndarray, name: str = "vector") -> list[float]:
    """The vector as a list of floats, after checking its shape and values."""
    array = np.asarray(vector, dtype=np.float32)
    if array.shape != (spec.dim,):
        raise InvalidArgument(name, f"must have {spec.dim} dimensions for {spec.name!r}, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InvalidArgument(name, "must hold finite numbers")
    if not np.any(array):
        raise InvalidArgument(name, "must not be all zeros (cosine distance is undefined)")
    values: list[float] = array.tolist()
    return values


def check_id(point_id: str, name: str = "id") -> str:
    try:
        return str(uuid.UUID(str(point_id)))
    except ValueError:
        raise InvalidArgument(name, f"must be a UUID, got {point_id!r}") from None


def check_limit(limit: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InvalidArgument("limit", f"must be a positive integer, got {limit!r}")
    return limit


def to_rfc3339(value: Any, name: str) -> str:
    """A datetime payload value (datetime, RFC 3339 string or epoch seconds) as an RFC 3339 UTC string."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        moment = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidArgument(name, f"must be an RFC 3339 time, got {value!r}") from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    else:
        raise InvalidArgument(name, f"must be a time (RFC 3339 string or epoch seconds), got {value!r}")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def normalise_payload(spec: CollectionSpec, payload: dict[str, Any], name: str = "payload") -> dict[str, Any]:
    """A copy of `payload` with datetime fields in RFC 3339 form."""
    if not isinstance(payload, dict):
        raise InvalidArgument(name, "must be an object")
    out = dict(payload)
    for key, kind in spec.indexes.items():
        if kind == "datetime" and out.get(key) is not None:
            out[key] = to_rfc3339(out[key], f"{name}.{key}")
    return out


def check_points(spec: CollectionSpec, points: Sequence[Point]) -> list[tuple[str, list[float], dict[str, Any]]]:
    """(id, vector, payload) for each point, validated; the last of duplicate ids wins."""
    checked: dict[str, tuple[str, list[float], dict[str, Any]]] = {}
    for i, point in enumerate(points):
        pid = check_id(point.id, f"points[{i}].id")
        vector = check_vector(spec, point.vector, f"points[{i}].vector")
        checked[pid] = (pid, vector, normalise_payload(spec, point.payload, f"points[{i}].payload"))
    return list(checked.values())


def check_filter(spec: CollectionSpec, flt: Filter | None) -> Filter | None:
    """The filter with datetime bounds validated; None when it is empty."""
    if flt is None or (not flt.must and not flt.ranges):
        return None
    for key, value in flt.must.items():
        if isinstance(value, list):
            if not value or not all(isinstance(v, str) for v in value):
                raise InvalidArgument(f"filter.must.{key}", "a list must hold one or more strings")
        elif not isinstance(value, str | int | float | bool):
            raise InvalidArgument(f"filter.must.{key}", f"must be a string, number, bool or list, got {value!r}")
    for key, bounds in flt.ranges.items():
        if not isinstance(bounds, tuple) or len(bounds) != 2:
            raise InvalidArgument(f"filter.ranges.{key}", "must be a (low, high) pair")
        for end in bounds:
            bad = isinstance(end, bool) or not isinstance(end, int | float) or not math.isfinite(end)
            if end is not None and bad:
                raise InvalidArgument(f"filter.ranges.{key}", f"bounds must be finite numbers or None, got {end!r}")
        if bounds[0] is None and bounds[1] is None:
            raise InvalidArgument(f"filter.ranges.{key}", "give at least one bound")
    return flt


def is_datetime(spec: CollectionSpec, key: str) -> bool:
    return spec.indexes.get(key) == "datetime"


def epoch_to_rfc3339(seconds: float) -> str:
    return to_rfc3339(seconds, "filter")
