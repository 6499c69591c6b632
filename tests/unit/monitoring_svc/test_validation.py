"""monitoring_svc without servers: point and query validation."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from monitoring_svc import buckets
from monitoring_svc.buckets import MICROS
from monitoring_svc.validation import MAX_POINTS, parse_points, parse_query
from ossa.monitoring.v1 import monitoring_pb2 as pb
from ossa_runtime.errors import InvalidArgument

NOW = 1_767_225_600 * MICROS + 123_456  # 2026-01-01T00:00:00.123456Z
HOUR = 3600 * MICROS
AGENT = "6f1c7a52-2b43-4a8e-9a55-0c1a3b8f9d10"


def point(**fields: object) -> pb.MetricPoint:
    fields.setdefault("name", "cpu_usage")
    fields.setdefault("value", 0.5)
    return pb.MetricPoint(**fields)  # type: ignore[arg-type]


def ts(micros: int) -> dict[str, int]:
    return {"seconds": micros // MICROS, "nanos": micros % MICROS * 1000}


def violations(err: pytest.ExceptionInfo[InvalidArgument]) -> dict[str, str]:
    return {v.field: v.description for v in err.value.violations}


# Bucket math -------------------------------------------------------------------------------------


def test_points_default_to_now_and_keep_labels() -> None:
    good, rejected = parse_points(
        [point(), point(agent_id=AGENT.upper(), labels={"k": "v"}, timestamp=ts(NOW - HOUR))], NOW, NOW - 2 * HOUR
    )
    assert rejected == []
    assert [p.timestamp for p in good] == [NOW, NOW - HOUR]
    assert good[1].agent_id == AGENT and good[1].labels == {"k": "v"} and good[1].field == "metrics[1]"


@pytest.mark.parametrize(
    ("bad", "field", "needle"),
    [
        (point(value=math.nan), "metrics[0].value", "finite"),
        (point(value=math.inf), "metrics[0].value", "finite"),
        (point(name=""), "metrics[0].name", "required"),
        (point(name="cpu usage"), "metrics[0].name", "A-Z"),
        (point(name="cpu\x00"), "metrics[0].name", "A-Z"),
        (point(name="9lives"), "metrics[0].name", "starting with"),
        (point(name="x" * 256), "metrics[0].name", "1-255"),
        (point(agent_id="agent-7"), "metrics[0].agent_id", "UUID"),
        (point(labels={"k": "a\x00b"}), "metrics[0].labels['k']", "control"),
        (point(labels={"": "v"}), "metrics[0].labels", "empty"),
        (point(labels={f"k{i}": "v" for i in range(65)}), "metrics[0].labels", "at most 64"),
        (point(labels={f"k{i}": "v" * 1000 for i in range(5)}), "metrics[0].labels", "4096 characters in all"),
        (point(timestamp={"seconds": 10**12}), "metrics[0].timestamp", "valid timestamp"),
        (point(timestamp={"seconds": 1, "nanos": -1}), "metrics[0].timestamp", "valid timestamp"),
    ],
)
def test_malformed_points_fail_the_batch_naming_the_field(bad: pb.MetricPoint, field: str, needle: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_points([bad], NOW, 0, where=" (message 2 of the stream)")
    found = violations(err)
    assert field in found and needle in found[field], found
    assert found[field].endswith("(message 2 of the stream)")


def spec_point(**fields: object) -> pb.MetricPoint:
    """A point named the spec's way (the metrics table's columns): metric_name / metric_value."""
    return pb.MetricPoint(**fields)  # type: ignore[arg-type]


def test_points_accept_the_spec_names_metric_name_and_metric_value() -> None:
    points = [
        spec_point(metric_name="cpu_usage", metric_value=0.25),
        spec_point(metric_name="cpu_usage", name="cpu_usage", metric_value=0.75, value=0.75),  # both, equal
        spec_point(metric_name="idle", metric_value=0.0),  # a zero metric_value is given (it has presence)
        spec_point(name="mixed", metric_value=2.0),
        spec_point(metric_name="mixed", value=3.0),
        point(),
    ]
    good, rejected = parse_points(points, NOW, 0)
    assert rejected == []
    assert [(p.name, p.value) for p in good] == [
        ("cpu_usage", Decimal("0.25")),
        ("cpu_usage", Decimal("0.75")),
        ("idle", Decimal(0)),
        ("mixed", Decimal(2)),
        ("mixed", Decimal(3)),
        ("cpu_usage", Decimal("0.5")),
    ]


@pytest.mark.parametrize(
    ("bad", "field", "needle"),
    [
        (spec_point(metric_name="cpu", name="mem", value=1.0), "metrics[0].metric_name", "'cpu' and name 'mem'"),
        (spec_point(name="cpu", value=1.0, metric_value=2.0), "metrics[0].metric_value", "2.0 and value 1.0"),
        (spec_point(name="cpu", value=1.0, metric_value=0.0), "metrics[0].metric_value", "must equal value"),
        (spec_point(metric_name="cpu usage", metric_value=1.0), "metrics[0].metric_name", "A-Z"),
        (spec_point(metric_name="cpu", metric_value=math.nan), "metrics[0].metric_value", "finite"),
        (spec_point(metric_value=1.0), "metrics[0].name", "name or metric_name"),
    ],
)
def test_spec_names_that_disagree_or_are_malformed_are_named(bad: pb.MetricPoint, field: str, needle: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_points([bad], NOW, 0)
    found = violations(err)
    assert list(found) == [field] and needle in found[field], found


def test_several_bad_points_are_all_named() -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_points([point(), point(value=math.nan), point(name="")], NOW, 0)
    assert set(violations(err)) == {"metrics[1].value", "metrics[2].name"}


def test_batch_size_is_capped() -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_points([point()] * (MAX_POINTS + 1), NOW, 0)
    assert "metrics" in violations(err)


def test_timestamps_out_of_range_are_rejected_one_by_one() -> None:
    points = [point(timestamp=ts(NOW + 6 * 60 * MICROS)), point(timestamp=ts(NOW - 3 * HOUR)), point()]
    good, rejected = parse_points(points, NOW, NOW - 2 * HOUR, offset=10)
    assert [p.index for p in good] == [12]
    assert [(r.index, r.field) for r in rejected] == [(10, "metrics[0].timestamp"), (11, "metrics[1].timestamp")]
    assert "future" in rejected[0].reason and "retention" in rejected[1].reason


# Queries -----------------------------------------------------------------------------------------


def query(**fields: object) -> pb.QueryMetricsRequest:
    fields.setdefault("metric_name", "cpu_usage")
    return pb.QueryMetricsRequest(**fields)  # type: ignore[arg-type]


def test_query_defaults_to_the_last_hour_by_minute_average() -> None:
    q = parse_query(query(), NOW)
    assert (q.window, q.agg, q.agent_id) == ("1m", "avg", None)
    assert q.end == buckets.ceil(NOW, "1m") and q.start == buckets.floor(NOW - HOUR, "1m")


def test_query_rounds_the_range_outwards() -> None:
    q = parse_query(
        query(agent_id=AGENT, window="5m", agg="p95", **{"from": ts(NOW - HOUR), "to": ts(NOW)}), NOW + HOUR
    )
    assert q.start == buckets.floor(NOW - HOUR, "5m") and q.end == buckets.ceil(NOW, "5m")
    assert (q.window, q.agg, q.agent_id) == ("5m", "p95", AGENT)


@pytest.mark.parametrize(
    ("fields", "field", "needle"),
    [
        ({"agg": "median"}, "agg", "avg, min, max, sum, count, p95"),
        ({"window": "2m"}, "window", "1m, 5m, 1h"),
        ({"metric_name": ""}, "metric_name", "required"),
        ({"metric_name": "a b"}, "metric_name", "metric name"),
        ({"agent_id": "x"}, "agent_id", "UUID"),
        ({"from": ts(NOW), "to": ts(NOW)}, "from", "before to"),
        ({"from": ts(NOW), "to": ts(NOW - 1)}, "from", "before to"),
        ({"from": ts(NOW - 8 * 24 * HOUR), "to": ts(NOW)}, "from", "at most 10000"),
        ({"from": {"seconds": -5}}, "from", "1970"),
        ({"to": {"seconds": 253_402_300_799}}, "to", "9999-01-01"),
        ({"to": {"seconds": 10**15}}, "to", "1970"),
    ],
)
def test_bad_queries_name_the_field(fields: dict[str, object], field: str, needle: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_query(query(**fields), NOW)
    found = violations(err)
    assert field in found and needle in found[field], found


def test_ten_thousand_buckets_is_the_limit() -> None:
    start = buckets.floor(NOW, "1m")
    parse_query(query(**{"from": ts(start), "to": ts(start + 10_000 * 60 * MICROS)}), NOW)
    with pytest.raises(InvalidArgument):
        parse_query(query(**{"from": ts(start), "to": ts(start + 10_000 * 60 * MICROS + 1)}), NOW)
    parse_query(query(window="1h", **{"from": ts(0), "to": ts(9_999 * HOUR)}), NOW)
