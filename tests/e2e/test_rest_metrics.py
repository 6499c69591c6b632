"""Metrics over REST through Envoy to the real monitoring service (and its gRPC stream via Envoy)."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from ossa.monitoring.v1 import monitoring_pb2 as pb
from ossa.monitoring.v1 import monitoring_pb2_grpc
from tests.e2e.platform import Platform, request
from tests.e2e.test_rest_agents import TIMESTAMP, assert_error, register

pytestmark = pytest.mark.e2e


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def minutes_ago(minutes: int) -> datetime:
    """A 5-minute boundary at least `minutes` ago (so 1m, 5m and 1h buckets line up)."""
    now = datetime.now(UTC)
    return now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0) - timedelta(minutes=minutes)


def get(platform: Platform, **params: str) -> tuple[int, dict[str, str], Any]:
    return request(platform.gateway, "GET", f"/api/v1/metrics?{urlencode(params)}")


def wait_for(platform: Platform, count: int, **params: str) -> list[dict[str, Any]]:
    """Query until the buckets hold `count` points (the flusher writes every second)."""
    deadline = time.monotonic() + 15
    while True:
        status, _, found = get(platform, agg="count", **params)
        assert status == 200, found
        if sum(int(b["count"]) for b in found) >= count or time.monotonic() > deadline:
            assert sum(int(b["count"]) for b in found) == count, found
            return list(found)
        time.sleep(0.2)


def test_ingest_is_202_and_query_returns_buckets(platform: Platform) -> None:
    agent = register(platform)
    name = f"e2e.{secrets.token_hex(4)}"
    start = minutes_ago(10)
    points = [
        {"name": name, "value": v, "agent_id": agent["id"], "labels": {"host": "a"}, "timestamp": rfc3339(start + d)}
        for v, d in [(1.0, timedelta(seconds=5)), (3.0, timedelta(seconds=20)), (10.5, timedelta(minutes=1))]
    ]
    points.append({"name": name, "value": 2, "timestamp": rfc3339(start + timedelta(minutes=1, seconds=30))})
    status, headers, body = request(platform.gateway, "POST", "/api/v1/metrics", {"metrics": points})
    assert status == 202 and headers["content-type"].startswith("application/json"), body
    assert body == {"accepted": 4, "rejected": 0, "rejections": []}
    assert "x-http-code" not in headers

    span = {"metric_name": name, "from": rfc3339(start), "to": rfc3339(start + timedelta(minutes=5))}
    counted = wait_for(platform, 4, window="1m", **span)
    assert [(b["start"], b["count"], b["value"]) for b in counted] == [
        (rfc3339(start).replace(".000000", ""), "2", 2),
        (rfc3339(start + timedelta(minutes=1)).replace(".000000", ""), "2", 2),
    ]
    assert all(TIMESTAMP.match(b["start"]) for b in counted)
    expected = {"avg": [2.0, 6.25], "min": [1.0, 2.0], "max": [3.0, 10.5], "sum": [4.0, 12.5], "p95": [2.9, 10.075]}
    for agg, values in expected.items():
        status, _, found = get(platform, window="1m", agg=agg, **span)
        assert status == 200 and [b["value"] for b in found] == pytest.approx(values), (agg, found)
    status, _, found = get(platform, window="5m", agg="sum", **span)
    assert status == 200 and [(b["value"], b["count"]) for b in found] == [(16.5, "4")]
    status, _, found = get(platform, window="1h", agg="avg", agent_id=agent["id"], **span)
    assert status == 200 and [(b["value"], b["count"]) for b in found] == [(14.5 / 3, "3")]
    status, _, found = get(platform, metric_name=f"none.{secrets.token_hex(4)}")
    assert (status, found) == (200, [])


def test_points_named_the_specs_way_are_stored_and_read_back(platform: Platform) -> None:
    """metric_name / metric_value (the spec's metrics table columns) work like name / value."""
    agent = register(platform)
    name = f"e2e.spec.{secrets.token_hex(4)}"
    start = minutes_ago(10)
    points = [
        {"metric_name": name, "metric_value": 1.5, "agent_id": agent["id"], "timestamp": rfc3339(start)},
        {"metric_name": name, "metric_value": 0, "timestamp": rfc3339(start + timedelta(seconds=10))},
        {"metric_name": name, "name": name, "metric_value": 4.5, "value": 4.5, "timestamp": rfc3339(start)},
    ]
    status, _, body = request(platform.gateway, "POST", "/api/v1/metrics", {"metrics": points})
    assert status == 202 and body == {"accepted": 3, "rejected": 0, "rejections": []}, body
    span = {"metric_name": name, "from": rfc3339(start), "to": rfc3339(start + timedelta(minutes=5))}
    wait_for(platform, 3, window="5m", **span)
    status, _, found = get(platform, window="5m", agg="sum", **span)
    assert status == 200 and [(b["value"], b["count"]) for b in found] == [(6.0, "3")], found
    status, _, found = get(platform, window="5m", agg="max", agent_id=agent["id"], **span)
    assert status == 200 and [(b["value"], b["count"]) for b in found] == [(1.5, "1")], found

    for point, needle in [
        ({"metric_name": name, "name": "e2e.other", "value": 1}, "metrics[0].metric_name"),
        ({"name": name, "value": 1, "metric_value": 2}, "metrics[0].metric_value"),
    ]:
        status, headers, body = request(platform.gateway, "POST", "/api/v1/metrics", {"metrics": [point]})
        assert_error(status, headers, body, 400, needle)


def test_unknown_agents_and_stale_points_are_reported(platform: Platform) -> None:
    ghost = str(uuid.uuid4())
    points = [
        {"name": "e2e.rejects", "value": 1, "agent_id": ghost},
        {"name": "e2e.rejects", "value": 1, "timestamp": rfc3339(datetime.now(UTC) + timedelta(hours=1))},
        {"name": "e2e.rejects", "value": 1},
    ]
    status, _, body = request(platform.gateway, "POST", "/api/v1/metrics", {"metrics": points})
    assert status == 202 and (body["accepted"], body["rejected"]) == (1, 2), body
    assert [r["field"] for r in body["rejections"]] == ["metrics[0].agent_id", "metrics[1].timestamp"]
    assert ghost in body["rejections"][0]["reason"]


@pytest.mark.parametrize(
    ("params", "needles"),
    [
        ({"metric_name": "cpu", "agg": "median"}, ["agg", "median"]),
        ({"metric_name": "cpu", "window": "2m"}, ["window", "2m"]),
        ({"metric_name": "cpu", "from": "2026-01-01T01:00:00Z", "to": "2026-01-01T00:00:00Z"}, ["from"]),
        ({"metric_name": "cpu", "from": "2000-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, ["from", "10000"]),
        ({"metric_name": "cpu", "from": "yesterday"}, ["from"]),
        ({"metric_name": "cpu", "agent_id": "nope"}, ["agent_id"]),
        ({"metric_name": "cpu\x00"}, ["metric_name"]),
        ({"agg": "avg"}, ["metric_name"]),
        ({"metric_name": "cpu", "colour": "blue"}, ["colour"]),
    ],
)
def test_bad_queries_are_400_naming_the_field(platform: Platform, params: dict[str, str], needles: list[str]) -> None:
    status, headers, body = get(platform, **params)
    assert_error(status, headers, body, 400, *needles)
    assert body["code"] == 3


def test_bad_query_carries_a_bad_request_detail(platform: Platform) -> None:
    status, _, body = get(platform, metric_name="cpu", agg="median")
    assert status == 400
    (detail,) = body["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert detail["field_violations"][0]["field"] == "agg"


@pytest.mark.parametrize(
    ("point", "needle"),
    [
        ({"name": "x", "value": "NaN"}, "metrics[0].value"),
        ({"name": "x", "value": "-Infinity"}, "metrics[0].value"),
        ({"name": "x y", "value": 1}, "metrics[0].name"),
        ({"name": "x", "value": 1, "agent_id": "agent-1"}, "metrics[0].agent_id"),
        ({"name": "x", "value": 1, "labels": {"k": "\u0000"}}, "metrics[0].labels"),
    ],
)
def test_malformed_points_are_400(platform: Platform, point: dict[str, Any], needle: str) -> None:
    status, headers, body = request(platform.gateway, "POST", "/api/v1/metrics", {"metrics": [point]})
    assert_error(status, headers, body, 400, needle)


def test_empty_or_broken_batches_are_400(platform: Platform) -> None:
    for raw in (b"{}", b'{"metrics": []}', b'{"metrics": [{"value": 1e999}]}', b'{"metrics": 5}'):
        status, headers, body = request(platform.gateway, "POST", "/api/v1/metrics", raw=raw)
        assert_error(status, headers, body, 400)


async def test_agents_stream_metrics_through_envoy(platform: Platform) -> None:
    name = f"e2e.stream.{secrets.token_hex(4)}"
    start = minutes_ago(5)

    async def batches() -> AsyncIterator[pb.PushMetricsRequest]:
        for i in range(3):
            message = pb.PushMetricsRequest()
            for j in range(100):
                p = message.metrics.add(name=name, value=float(j))
                p.timestamp.FromDatetime(start + timedelta(seconds=i))
            yield message

    async with platform.channel() as channel:
        reply = await monitoring_pb2_grpc.MonitoringServiceStub(channel).PushMetrics(batches())
    assert (reply.accepted, reply.rejected) == (300, 0)
    span = {"metric_name": name, "from": rfc3339(start), "to": rfc3339(start + timedelta(minutes=1))}
    wait_for(platform, 300, window="1m", **span)
    status, _, found = get(platform, window="1m", agg="avg", **span)
    assert status == 200 and [b["value"] for b in found] == [49.5]


def test_health_report_includes_the_monitoring_service(platform: Platform) -> None:
    status, _, report = request(platform.gateway, "GET", "/api/v1/health")
    assert status == 200, report
    (monitoring,) = [c for c in report["components"] if c["name"] == "monitoring"]
    assert monitoring["state"] == "healthy" and monitoring["target"].endswith(f":{platform.port('monitoring')}")
