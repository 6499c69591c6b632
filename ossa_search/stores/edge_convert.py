"""The store contract in qdrant-edge terms: shard config, payload index kinds, filters, upserts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import qdrant_edge as qe

from ossa_search.stores.base import CollectionSpec, Filter, epoch_to_rfc3339, is_datetime

Row = tuple[str, list[float], dict[str, Any]]
SCHEMA = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "text": qe.PayloadSchemaType.Text,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
    "bool": qe.PayloadSchemaType.Bool,
    "datetime": qe.PayloadSchemaType.Datetime,
}
# A build indexes segments past INDEX_POINTS points' worth of vectors at most.
INDEX_POINTS = 1000


def edge_config(spec: CollectionSpec, optimize_threshold: int) -> qe.EdgeConfig:
    # A build indexes segments past this size (in KB): at most INDEX_POINTS points' worth, so a
    # build started by `optimize_threshold` waiting points always has something to index.
    threshold_kb = max(1, min(optimize_threshold, INDEX_POINTS) * spec.dim * 4 // 1024)
    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=spec.dim, distance=qe.Distance.Cosine),
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=threshold_kb),
        quantization_config=qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99, always_ram=True),
    )


# int8 candidates, twice as many as asked for, rescored with the float vectors (see ossa_search.stores.edge).
APPROXIMATE = qe.QuantizationSearchParams(rescore=True, oversampling=2.0)
EXACT = qe.QuantizationSearchParams(ignore=True)


def edge_filter(spec: CollectionSpec, flt: Filter | None) -> qe.Filter | None:
    if flt is None:
        return None
    conditions: list[qe.FieldCondition] = []
    for key, value in flt.must.items():
        if isinstance(value, list):
            conditions.append(qe.FieldCondition(key, match=qe.MatchAny(value)))
        elif isinstance(value, float):
            conditions.append(qe.FieldCondition(key, range=qe.RangeFloat(gte=value, lte=value)))
        else:
            conditions.append(qe.FieldCondition(key, match=qe.MatchValue(value)))
    for key, (low, high) in flt.ranges.items():
        if is_datetime(spec, key):
            start = None if low is None else epoch_to_rfc3339(low)
            end = None if high is None else epoch_to_rfc3339(high)
            conditions.append(qe.FieldCondition(key, range=qe.RangeDateTime(gte=start, lte=end)))
        else:
            conditions.append(qe.FieldCondition(key, range=qe.RangeFloat(gte=low, lte=high)))
    return qe.Filter(must=list(conditions))


def upsert_op(rows: Sequence[Row]) -> qe.UpdateOperation:
    return qe.UpdateOperation.upsert_points([qe.Point(pid, vector, payload) for pid, vector, payload in rows])
