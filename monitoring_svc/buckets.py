"""Time buckets and aggregates: one arithmetic for PostgreSQL rows and for the Redis cache.

Times are integer microseconds since the Unix epoch (PostgreSQL's resolution). A bucket of a window
starts at a multiple of the window since the epoch, as `date_bin(window, timestamp, 'epoch')`
computes it. A value is stored as the decimal of its shortest repr and sums are exact (NUMERIC in
PostgreSQL, a wide Decimal context here), so count, sum, min and max merge exactly and an average
computed from cached partial aggregates is the very double the SQL path returns.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

MICROS = 1_000_000
# Bucket widths in seconds, by their name in the API.
WINDOWS: dict[str, int] = {"1m": 60, "5m": 300, "1h": 3600}
# Aggregations, in the order the API lists them; p95 cannot be merged from partial aggregates.
AGGS = ("avg", "min", "max", "sum", "count", "p95")
MERGEABLE = frozenset({"avg", "min", "max", "sum", "count"})
MAX_BUCKETS = 10_000
FINEST = min(WINDOWS, key=WINDOWS.__getitem__)
assert all(seconds % WINDOWS[FINEST] == 0 for seconds in WINDOWS.values())  # wider buckets nest
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Exact for any sum of doubles: their shortest reprs span about 650 decimal digits (1e-340 to
# 1e309) plus a few digits of carry, well within 1000.
_EXACT = decimal.Context(prec=1000, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
# Division for averages; the result is then rounded once more, to a double.
_DIVIDE = decimal.Context(prec=60)


def window_micros(window: str) -> int:
    return WINDOWS[window] * MICROS


def floor(micros: int, window: str) -> int:
    """Start of the bucket holding `micros` (Python's % rounds toward minus infinity)."""
    return micros - micros % window_micros(window)


def ceil(micros: int, window: str) -> int:
    """The first bucket boundary at or after `micros`."""
    return -floor(-micros, window)


def bucket_count(start: int, end: int, window: str) -> int:
    """How many buckets [floor(start), ceil(end)) spans."""
    return (ceil(end, window) - floor(start, window)) // window_micros(window)


def to_datetime(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def to_micros(value: datetime) -> int:
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * MICROS + delta.microseconds


def exact(value: float) -> Decimal:
    """The decimal a double is stored as: its shortest repr (-0.0 becomes 0)."""
    return Decimal(repr(value + 0.0))


@dataclass(frozen=True)
class Aggregate:
    """count, sum, min and max of a bucket's values: enough for every mergeable aggregation."""

    count: int
    total: Decimal
    low: Decimal
    high: Decimal

    @classmethod
    def of(cls, value: Decimal) -> Aggregate:
        return cls(1, value, value, value)

    def merge(self, other: Aggregate) -> Aggregate:
        return Aggregate(
            self.count + other.count,
            _EXACT.add(self.total, other.total),
            min(self.low, other.low),
            max(self.high, other.high),
        )

    def value(self, agg: str) -> float:
        if agg == "avg":
            return float(_DIVIDE.divide(self.total, Decimal(self.count)))
        if agg == "sum":
            return float(self.total)
        if agg == "min":
            return float(self.low)
        if agg == "max":
            return float(self.high)
        if agg == "count":
            return float(self.count)
        raise ValueError(f"{agg} is not a mergeable aggregation")

    def encode(self) -> str:
        return f"{self.count}|{self.total}|{self.low}|{self.high}"

    @classmethod
    def decode(cls, text: str) -> Aggregate:
        count, total, low, high = text.split("|")
        return cls(int(count), Decimal(total), Decimal(low), Decimal(high))


@dataclass(frozen=True)
class Bucket:
    """One bucket of a query's answer."""

    start: int  # microseconds since the epoch
    value: float
    count: int


def summarize(
    points: Iterable[tuple[str, int, Decimal]], oldest: dict[str, int]
) -> dict[tuple[str, str], dict[int, Aggregate]]:
    """Aggregates of (metric, timestamp, value) points by metric, window and bucket, for the
    buckets from `oldest[window]` (a bucket start) on: one pass into the finest buckets, which
    then merge into the wider ones."""
    step = window_micros(FINEST)
    low = min(oldest.values())
    add = _EXACT.add
    acc: dict[tuple[str, int], list[Decimal]] = {}
    counts: dict[tuple[str, int], int] = {}
    for name, ts, value in points:
        if ts < low:
            continue
        key = (name, ts - ts % step)
        slot = acc.get(key)
        if slot is None:
            acc[key] = [value, value, value]
            counts[key] = 1
            continue
        counts[key] += 1
        slot[0] = add(slot[0], value)
        if value < slot[1]:
            slot[1] = value
        elif value > slot[2]:
            slot[2] = value
    out: dict[tuple[str, str], dict[int, Aggregate]] = {}
    for (name, start), (total, lo, hi) in acc.items():
        part = Aggregate(counts[name, start], total, lo, hi)
        for window in WINDOWS:
            bucket = floor(start, window)
            if bucket >= oldest[window]:
                found = out.setdefault((name, window), {})
                found[bucket] = found[bucket].merge(part) if bucket in found else part
    return out
