"""ossa_runtime.messages: rows to protobuf messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf import timestamp_pb2

from ossa_runtime.messages import timestamp


def reference(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 5, 21, 40, 1, 123456, tzinfo=UTC),
        datetime(2026, 12, 5, 23, 40, 1, 999999, tzinfo=timezone(timedelta(hours=2))),  # not UTC
        datetime(2026, 12, 5, 21, 40, 1, 5),  # naive: taken as UTC, as FromDatetime does
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),  # before the epoch: nanos stay >= 0
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_timestamp_matches_protobufs_own_conversion(value: datetime) -> None:
    got = timestamp(value)
    assert got == reference(value)
    assert 0 <= got.nanos < 1_000_000_000
    assert got.ToDatetime(tzinfo=UTC) == (value if value.tzinfo else value.replace(tzinfo=UTC))
