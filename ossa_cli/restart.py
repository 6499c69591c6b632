"""When `ossa up` restarts a child that exited by itself, and when it gives up.

Each child has its own count of recent crashes. The n-th crash within `window` seconds is followed
by a restart after `backoff * 2**(n-1)` seconds (at most `backoff_max`); the `max_crashes`-th
crash within the window ends `ossa up` instead. Crashes older than the window are forgotten, so a
child that stayed up for a whole window starts again from the first delay. Pure bookkeeping: the
supervisor passes the time in (tests use their own clock).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ossa_runtime.settings import Settings


@dataclass(frozen=True)
class RestartPolicy:
    backoff: float = 0.5
    backoff_max: float = 10.0
    max_crashes: int = 5
    window: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RestartPolicy:
        return cls(
            backoff=settings.restart_backoff_seconds,
            backoff_max=settings.restart_backoff_max_seconds,
            max_crashes=settings.restart_crashes_max,
            window=settings.restart_window_seconds,
        )

    @property
    def limit(self) -> str:
        crashes = "crash" if self.max_crashes == 1 else "crashes"
        return f"{self.max_crashes} {crashes} within {self.window:g}s"


@dataclass
class CrashCount:
    """One child's crashes within the policy's window (times from one monotonic clock)."""

    policy: RestartPolicy
    times: list[float] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.times)

    def crashed(self, now: float) -> float | None:
        """Record a crash at `now`: the delay before restarting, or None to give up."""
        self.times = [t for t in self.times if now - t < self.policy.window]
        self.times.append(now)
        if self.count >= self.policy.max_crashes:
            return None
        return float(min(self.policy.backoff * 2 ** (self.count - 1), self.policy.backoff_max))
