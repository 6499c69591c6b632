"""ossa_cli.restart: the backoff before each restart and when `ossa up` gives up (times passed in)."""

from __future__ import annotations

import pytest

from ossa_cli.restart import CrashCount, RestartPolicy
from ossa_runtime.settings import Settings, SettingsError


def delays(policy: RestartPolicy, times: list[float]) -> list[float | None]:
    count = CrashCount(policy)
    return [count.crashed(t) for t in times]


def test_the_delay_doubles_up_to_the_cap() -> None:
    policy = RestartPolicy(backoff=0.5, backoff_max=10.0, max_crashes=100, window=1000.0)
    assert delays(policy, [0, 1, 2, 3, 4, 5, 6, 7]) == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_gives_up_at_the_last_allowed_crash_within_the_window() -> None:
    assert delays(RestartPolicy(), [0, 1, 3, 6, 11]) == [0.5, 1.0, 2.0, 4.0, None]


def test_one_allowed_crash_means_no_restart() -> None:
    policy = RestartPolicy(max_crashes=1)
    assert delays(policy, [0]) == [None]
    assert policy.limit == "1 crash within 60s"


def test_crashes_older_than_the_window_are_forgotten() -> None:
    policy = RestartPolicy(backoff=0.5, max_crashes=5, window=60.0)
    # Four quick crashes, then a minute up: the fifth crash starts again from the first delay.
    assert delays(policy, [0, 1, 2, 3, 64]) == [0.5, 1.0, 2.0, 4.0, 0.5]
    # A crash every 20 s keeps at most three in the window: restarted for ever.
    assert None not in delays(policy, [20.0 * i for i in range(50)])


def test_the_window_slides() -> None:
    count = CrashCount(RestartPolicy(max_crashes=3, window=10.0))
    assert [count.crashed(t) for t in (0, 5, 11)] == [0.5, 1.0, 1.0]  # the crash at 0 has left the window
    assert count.count == 2
    assert count.crashed(12) is None


def test_policy_from_settings() -> None:
    settings = Settings.from_env(
        {
            "OSSA_RESTART_BACKOFF_SECONDS": "0.25",
            "OSSA_RESTART_BACKOFF_MAX_SECONDS": "2",
            "OSSA_RESTART_CRASHES_MAX": "3",
            "OSSA_RESTART_WINDOW_SECONDS": "30",
        }
    )
    assert RestartPolicy.from_settings(settings) == RestartPolicy(0.25, 2.0, 3, 30.0)
    assert RestartPolicy.from_settings(Settings.from_env({})) == RestartPolicy()


@pytest.mark.parametrize(
    "var", ["OSSA_RESTART_BACKOFF_SECONDS", "OSSA_RESTART_CRASHES_MAX", "OSSA_RESTART_WINDOW_SECONDS"]
)
def test_limits_must_be_positive(var: str) -> None:
    with pytest.raises(SettingsError, match=var):
        Settings.from_env({var: "0"})
