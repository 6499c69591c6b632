"""Request validation for the monitoring service: every error names the field that is wrong.

A malformed point fails its whole request (INVALID_ARGUMENT, `metrics[i].<field>`). A well-formed
point whose timestamp is too far ahead or past the retention horizon is rejected on its own and
reported in the reply, as are points of unregistered agents (checked later, against PostgreSQL).

A point names its metric and value as `name`/`value` or, in the spec's words (the metrics table's
columns, as QueryMetrics says `metric_name`), `metric_name`/`metric_value`: either form, or both
when they agree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from google.protobuf import timestamp_pb2

from monitoring_svc import buckets
from monitoring_svc.buckets import AGGS, MAX_BUCKETS, MICROS, WINDOWS
from ossa.monitoring.v1 import monitoring_pb2 as pb
from ossa_runtime import validate
from ossa_runtime.errors import FieldViolation, InvalidArgument

MAX_POINTS = 10_000
MAX_LABELS, LABEL_KEY_MAX, LABEL_VALUE_MAX, LABELS_MAX = 64, 255, 1024, 4096
MAX_FUTURE_MICROS = 5 * 60 * MICROS
MAX_REPORTED = 20  # violations listed in one error
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/-]{0,254}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What google.protobuf.Timestamp can hold: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
_TS_MIN, _TS_MAX = -62_135_596_800, 253_402_300_799
# Queries: between the epoch and 9999-01-01, so that every rounded bound is a valid timestamp.
QUERY_MAX_MICROS = 253_370_764_800 * MICROS
DEFAULT_WINDOW, DEFAULT_AGG = "1m", "avg"
DEFAULT_RANGE_MICROS = 3600 * MICROS


@dataclass(frozen=True)
class Point:
    """A well-formed point, ready to buffer."""

    index: int  # position in the request (over the whole stream for PushMetrics)
    field: str  # `metrics[i]`, to name it in a rejection
    agent_id: str | None
    name: str
    value: Decimal
    labels: dict[str, str]
    timestamp: int  # microseconds since the epoch


@dataclass(frozen=True)
class Rejection:
    index: int
    field: str
    reason: str


@dataclass(frozen=True)
class Query:
    metric: str
    agent_id: str | None
    start: int  # rounded down to the window
    end: int  # rounded up to the window
    window: str
    agg: str


def timestamp_micros(ts: timestamp_pb2.Timestamp) -> int | None:
    """Microseconds since the epoch, or None for a value google.protobuf.Timestamp cannot hold."""
    if not (_TS_MIN <= ts.seconds <= _TS_MAX and 0 <= ts.nanos < 1_000_000_000):
        return None
    return ts.seconds * MICROS + ts.nanos // 1000


def _text(value: str, field: str, maximum: int, problems: list[FieldViolation], *, empty: bool = False) -> None:
    if not value and not empty:
        problems.append(FieldViolation(field, "must not be empty"))
    elif len(value) > maximum:
        problems.append(FieldViolation(field, f"must be at most {maximum} characters, got {len(value)}"))
    elif _CONTROL.search(value):
        problems.append(FieldViolation(field, "must not contain control characters"))


def _metric_name(point: pb.MetricPoint, field: str, problems: list[FieldViolation]) -> tuple[str | None, str]:
    """The metric name from `name` or `metric_name` and the field it came from; None if they differ."""
    if point.name and point.metric_name and point.name != point.metric_name:
        problems.append(
            FieldViolation(
                f"{field}.metric_name",
                f"must equal name when both are given, got {point.metric_name[:64]!r} and name {point.name[:64]!r}",
            )
        )
        return None, f"{field}.metric_name"
    if point.metric_name:
        return point.metric_name, f"{field}.metric_name"
    return point.name, f"{field}.name"


def _metric_value(point: pb.MetricPoint, field: str, problems: list[FieldViolation]) -> tuple[float | None, str]:
    """The value from `value` or `metric_value` and the field it came from; None if they differ.

    `value` has no presence (proto3): 0 reads as not given, so only a non-zero `value` can disagree.
    """
    if not point.HasField("metric_value"):
        return point.value, f"{field}.value"
    given, other = point.metric_value, point.value
    if other != 0 and other != given and not (math.isnan(other) and math.isnan(given)):
        reason = f"must equal value when both are given, got {given} and value {other}"
        problems.append(FieldViolation(f"{field}.metric_value", reason))
        return None, f"{field}.metric_value"
    return given, f"{field}.metric_value"


def _check_point(
    point: pb.MetricPoint, field: str, problems: list[FieldViolation]
) -> tuple[str | None, str, Decimal, int | None]:
    agent_id = None
    if point.agent_id:
        try:
            agent_id = validate.parse_uuid(point.agent_id, f"{field}.agent_id")
        except InvalidArgument as err:
            problems.extend(err.violations)
    name, name_field = _metric_name(point, field, problems)
    if name == "":
        problems.append(FieldViolation(f"{field}.name", "is required (as name or metric_name)"))
    elif name is not None and not NAME.match(name):
        problems.append(
            FieldViolation(
                name_field,
                f"must be 1-255 characters of A-Z a-z 0-9 _ . : / - starting with a letter or _, got {name[:64]!r}",
            )
        )
    value = Decimal(0)
    number, value_field = _metric_value(point, field, problems)
    if number is not None and not math.isfinite(number):
        problems.append(FieldViolation(value_field, f"must be a finite number, got {number}"))
    elif number is not None:
        value = buckets.exact(number)
    if len(point.labels) > MAX_LABELS:
        problems.append(FieldViolation(f"{field}.labels", f"must have at most {MAX_LABELS} entries"))
    elif sum(len(k) + len(v) for k, v in point.labels.items()) > LABELS_MAX:
        problems.append(FieldViolation(f"{field}.labels", f"must have at most {LABELS_MAX} characters in all"))
    else:
        for key, text in point.labels.items():
            _text(key, f"{field}.labels", LABEL_KEY_MAX, problems)
            _text(text, f"{field}.labels[{key[:64]!r}]", LABEL_VALUE_MAX, problems, empty=True)
    micros = None
    if point.HasField("timestamp"):
        micros = timestamp_micros(point.timestamp)
        if micros is None:
            problems.append(FieldViolation(f"{field}.timestamp", "is not a valid timestamp"))
    return agent_id, name or "", value, micros


def parse_points(
    points: Sequence[pb.MetricPoint], now: int, oldest: int, *, offset: int = 0, where: str = ""
) -> tuple[list[Point], list[Rejection]]:
    """Well-formed points and the ones rejected for their timestamp, or InvalidArgument.

    `now` is the default timestamp, `oldest` the retention horizon (both microseconds since the
    epoch); `offset` numbers the points after those of earlier stream messages; `where` is added
    to error descriptions (e.g. " (message 3 of the stream)").
    """
    if len(points) > MAX_POINTS:
        raise InvalidArgument("metrics", f"must have at most {MAX_POINTS} points per request, got {len(points)}")
    problems: list[FieldViolation] = []
    accepted: list[Point] = []
    rejected: list[Rejection] = []
    for i, point in enumerate(points):
        field = f"metrics[{i}]"
        before = len(problems)
        agent_id, name, value, micros = _check_point(point, field, problems)
        if len(problems) > before:
            continue
        ts = now if micros is None else micros
        if ts > now + MAX_FUTURE_MICROS:
            rejected.append(Rejection(offset + i, f"{field}.timestamp", "is more than 5 minutes in the future"))
        elif ts < oldest:
            rejected.append(Rejection(offset + i, f"{field}.timestamp", "is older than the retention horizon"))
        else:
            labels = dict(point.labels)
            accepted.append(Point(offset + i, field, agent_id, name, value, labels, ts))
    if problems:
        shown = [FieldViolation(p.field, p.description + where) for p in problems[:MAX_REPORTED]]
        raise InvalidArgument(shown)
    return accepted, rejected


def _bound(request: pb.QueryMetricsRequest, name: str, problems: list[FieldViolation]) -> int | None:
    if not request.HasField(name):
        return None
    micros = timestamp_micros(getattr(request, name))
    if micros is None or not 0 <= micros < QUERY_MAX_MICROS:
        problems.append(FieldViolation(name, "must be between 1970-01-01T00:00:00Z and 9999-01-01T00:00:00Z"))
        return None
    return micros


def parse_query(request: pb.QueryMetricsRequest, now: int) -> Query:
    problems: list[FieldViolation] = []
    if not request.metric_name:
        problems.append(FieldViolation("metric_name", "is required"))
    elif not NAME.match(request.metric_name):
        problems.append(FieldViolation("metric_name", f"is not a metric name: {request.metric_name[:64]!r}"))
    agent_id = None
    if request.agent_id:
        try:
            agent_id = validate.parse_uuid(request.agent_id, "agent_id")
        except InvalidArgument as err:
            problems.extend(err.violations)
    window = request.window or DEFAULT_WINDOW
    if window not in WINDOWS:
        problems.append(FieldViolation("window", f"must be one of {', '.join(WINDOWS)}; got {window[:64]!r}"))
    agg = request.agg or DEFAULT_AGG
    if agg not in AGGS:
        problems.append(FieldViolation("agg", f"must be one of {', '.join(AGGS)}; got {agg[:64]!r}"))
    start, end = _bound(request, "from", problems), _bound(request, "to", problems)
    if problems:
        raise InvalidArgument(problems)
    end = min(now, QUERY_MAX_MICROS - 1) if end is None else end
    start = max(0, end - DEFAULT_RANGE_MICROS) if start is None else start
    if start >= end:
        raise InvalidArgument("from", "must be before to")
    spanned = buckets.bucket_count(start, end, window)
    if spanned > MAX_BUCKETS:
        raise InvalidArgument(
            "from",
            f"the range spans {spanned} buckets of {window}; at most {MAX_BUCKETS} (use a wider window "
            f"or a shorter range)",
        )
    return Query(request.metric_name, agent_id, buckets.floor(start, window), buckets.ceil(end, window), window, agg)
