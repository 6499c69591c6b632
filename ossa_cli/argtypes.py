"""argparse value types shared by the `ossa` subcommands: one-line errors naming the bad value."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable


def whole_number(low: int, high: int | None = None, what: str = "a whole number") -> Callable[[str], int]:
    """A type accepting integers in [low, high] (no upper bound when `high` is None)."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not {what}") from None
        if value < low or (high is not None and value > high):
            bounds = f"{low}-{high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{value} is not {what} ({bounds})")
        return value

    return parse


def seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{value} must not be negative")
    return value


port = whole_number(0, 65535, "a port number")
positive = whole_number(1)


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(?:(\d+)([smhdw]))+")


def duration(raw: str) -> int:
    """Whole seconds from `3600`, `90s`, `15m`, `1h`, `7d`, `2w` or a sum such as `1h30m`; must be > 0."""
    text = raw.strip().lower()
    if text.isdigit():
        value = int(text)
    elif _DURATION.fullmatch(text):
        value = sum(int(n) * _DURATION_UNITS[unit] for n, unit in re.findall(r"(\d+)([smhdw])", text))
    else:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a duration (e.g. 3600, 90s, 15m, 1h, 7d, 1h30m)")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{raw!r}: a duration must be longer than 0 seconds")
    return value
