"""The long poll's `wait` parameter: durations, the cap, and errors naming the field."""

from __future__ import annotations

import pytest

from orchestrator_svc.watch import MAX_WAIT_SECONDS, parse_wait
from ossa_runtime.errors import InvalidArgument


@pytest.mark.parametrize(
    ("raw", "seconds"), [("30s", 30.0), ("500ms", 0.5), ("1m", 60.0), ("2.5s", 2.5), ("0s", 0.0), ("45", 45.0)]
)
def test_durations(raw: str, seconds: float) -> None:
    assert parse_wait(raw) == seconds


@pytest.mark.parametrize("raw", ["61s", "2m", "-1s", "soon", "30 s", "1h", "1e3"])
def test_bad_or_too_long_waits_name_the_field(raw: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_wait(raw)
    assert [v.field for v in err.value.violations] == ["wait"]
    assert MAX_WAIT_SECONDS == 60.0
