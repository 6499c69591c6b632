"""What every benchmark prints: percentiles, a results table with the spec's targets, the machine's load."""

from __future__ import annotations

import os
from dataclasses import dataclass


def percentile_ms(samples: list[float], q: float) -> float:
    """The q-quantile of `samples` (seconds), in milliseconds; NaN when there are none."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@dataclass
class Result:
    operation: str
    path: str
    samples: list[float]  # seconds
    elapsed: float
    errors: int = 0

    def pct(self, q: float) -> float:
        return percentile_ms(self.samples, q)

    @property
    def rate(self) -> float:
        return len(self.samples) / self.elapsed if self.elapsed else 0.0


def print_table(title: str, rows: list[Result], targets: dict[str, str], rate: str = "ops/s") -> None:
    print(f"\n{title}")
    header = (
        f"{'operation':<22} {'path':<40} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{rate:>8} {'err':>5}  target"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.operation:<22} {r.path:<40} {len(r.samples):>6} {r.pct(0.50):>8.2f} {r.pct(0.95):>8.2f} "
            f"{r.pct(0.99):>8.2f} {r.rate:>8.0f} {r.errors:>5}  {targets.get(r.operation, '')}"
        )


def machine_note() -> str:
    """Cores and load average: how noisy the shared machine was while measuring."""
    load = os.getloadavg()
    return f"cores={os.cpu_count()} loadavg(1/5/15m)={load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}"
