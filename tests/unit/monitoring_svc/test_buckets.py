"""monitoring_svc without servers: bucket math, exact aggregates, the Redis buffer's encoding."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from monitoring_svc import buckets
from monitoring_svc.aggregates import HORIZON, horizon_start
from monitoring_svc.buckets import MICROS, Aggregate
from monitoring_svc.buffer import decode, encode
from monitoring_svc.validation import parse_points
from ossa.monitoring.v1 import monitoring_pb2 as pb

NOW = 1_767_225_600 * MICROS + 123_456  # 2026-01-01T00:00:00.123456Z
HOUR = 3600 * MICROS
AGENT = "6f1c7a52-2b43-4a8e-9a55-0c1a3b8f9d10"


def point(**fields: object) -> pb.MetricPoint:
    fields.setdefault("name", "cpu_usage")
    fields.setdefault("value", 0.5)
    return pb.MetricPoint(**fields)  # type: ignore[arg-type]


# Bucket math -------------------------------------------------------------------------------------


def test_floor_and_ceil_align_on_epoch_multiples() -> None:
    minute = 60 * MICROS
    assert buckets.floor(NOW, "1m") == NOW - 123_456
    assert buckets.ceil(NOW, "1m") == NOW - 123_456 + minute
    assert buckets.floor(NOW - 123_456, "1m") == buckets.ceil(NOW - 123_456, "1m") == NOW - 123_456
    assert buckets.floor(NOW + 7 * minute, "5m") == NOW - 123_456 + 5 * minute
    assert buckets.floor(NOW + 59 * minute, "1h") == NOW - 123_456
    assert buckets.floor(-1, "1m") == -minute  # rounds toward minus infinity, like date_bin
    assert buckets.bucket_count(NOW, NOW + 1, "1m") == 1
    assert buckets.bucket_count(NOW - 123_456, NOW - 123_456 + 10 * minute, "1m") == 10
    assert buckets.bucket_count(NOW, NOW + 10 * minute, "1m") == 11  # both ends rounded outwards


def test_datetime_round_trip_is_exact() -> None:
    for micros in (0, NOW, 253_370_764_800 * MICROS - 1, 1):
        assert buckets.to_micros(buckets.to_datetime(micros)) == micros


def test_horizon_keeps_whole_buckets() -> None:
    for window, count in HORIZON.items():
        start = horizon_start(NOW, window)
        assert start == buckets.floor(start, window)
        assert (buckets.floor(NOW, window) - start) // buckets.window_micros(window) == count - 1


# Exact aggregates --------------------------------------------------------------------------------


def test_aggregates_merge_exactly_and_finish_like_sql() -> None:
    values = [0.1, 0.2, 0.3, 1e-300, -2.5, 7.0]
    merged = Aggregate.of(buckets.exact(values[0]))
    for v in values[1:]:
        merged = merged.merge(Aggregate.of(buckets.exact(v)))
    assert merged.count == 6
    assert merged.total == Decimal("5.1" + "0" * 298 + "1")  # exact: 1e-300 is not rounded away
    assert merged.value("min") == -2.5 and merged.value("max") == 7.0 and merged.value("count") == 6.0
    assert merged.value("sum") == float(merged.total)
    assert merged.value("avg") == pytest.approx(sum(values) / 6)
    assert Aggregate.decode(merged.encode()) == merged
    with pytest.raises(ValueError):
        merged.value("p95")


def test_huge_values_do_not_overflow() -> None:
    big = Aggregate.of(buckets.exact(1.7e308)).merge(Aggregate.of(buckets.exact(1.7e308)))
    assert big.value("avg") == 1.7e308
    assert big.value("sum") == math.inf  # beyond a double, but no error
    assert buckets.exact(-0.0) == Decimal("0.0") and str(buckets.exact(-0.0)) == "0.0"


def test_buffer_entries_round_trip() -> None:
    good, _ = parse_points([point(agent_id=AGENT, value=0.1, labels={"host": 'a"\u00e9'}), point()], NOW, 0)
    first, second = decode([encode(p) for p in good])
    assert (first.agent_id, first.name, first.value, first.labels, first.timestamp) == (
        AGENT,
        "cpu_usage",
        "0.1",
        '{"host":"a\\"\u00e9"}',
        NOW,
    )
    assert "\n" not in encode(good[0])  # entries travel joined by newlines
    assert second.agent_id is None and first.id != second.id
    assert [p.value for p in decode([encode(good[1]), "{not json", encode(good[0])])] == ["0.5", "0.1"]


def test_summarize_merges_fine_buckets_into_wide_ones() -> None:
    minute = 60 * MICROS
    base = buckets.floor(NOW, "1h")
    points = [("a", base + 10, Decimal(1)), ("a", base + 10 + minute, Decimal(5)), ("a", base + 3, Decimal(-2))]
    points += [("b", base + 6 * minute, Decimal("0.5")), ("a", base - 2 * 3600 * MICROS, Decimal(9))]
    oldest = {"1m": base, "5m": base, "1h": base - 3 * 3600 * MICROS}
    out = buckets.summarize(points, oldest)
    assert out["a", "1m"] == {
        base: Aggregate(2, Decimal(-1), Decimal(-2), Decimal(1)),
        base + minute: Aggregate.of(Decimal(5)),
    }
    assert out["a", "5m"] == {base: Aggregate(3, Decimal(4), Decimal(-2), Decimal(5))}
    assert out["a", "1h"] == {
        base: Aggregate(3, Decimal(4), Decimal(-2), Decimal(5)),
        base - 2 * 3600 * MICROS: Aggregate.of(Decimal(9)),  # older than the 1m/5m horizons
    }
    assert out["b", "5m"] == {base + 5 * minute: Aggregate.of(Decimal("0.5"))}


# Points ------------------------------------------------------------------------------------------
