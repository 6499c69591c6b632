"""Run bench_orchestrator.py several times (optionally alternating with another checkout) and print
the median, min and max of every tasks/s row of its section 7, with each run's ratio to the Celery
figure of that same run, and of the orchestrator's CPU ms per task of its section 6b (what each task
cost, a second view of the same runs: issue 12's target is 0.5 ms).

One run on a shared 2-core machine moves by a quarter from one run to the next, Celery's figure as
much as OSSA's: a change is only visible in several runs taken back to back under the same
conditions. `--before DIR` runs the checkout in DIR (with its own .venv) alternately with this one,
before first, and prints both sides and the after/before ratio of the medians:

    git worktree add /tmp/before <commit> && (cd /tmp/before && python3 -m venv .venv &&
        .venv/bin/pip install -e '.[dev,bench]')
    python benchmarks/bench_repeat.py --runs 3 --before /tmp/before            # --start --cli-only each
    python benchmarks/bench_repeat.py --runs 3 -- --tasks 4000 --cli-slots 8   # after --: bench args
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
ROW = re.compile(r"^(tasks/s .+?)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+|nan)\s*$")
# Section 6b: row, tasks, PG stmts, PG xacts, orch RT, Redis cmds, orch CPU ms, then the verdict.
COST = re.compile(r"^(\S.*?)\s+(\d+)\s+([\d.]+|-)\s+([\d.]+|-)\s+([\d.]+|-)\s+([\d.]+|-)\s+([\d.]+|-)\s+<=")
DEFAULT_ARGS = ["--start", "--cli-only"]


@dataclass
class Side:
    """One checkout: where it is, and the section-7 rows of each of its runs."""

    name: str
    root: Path
    runs: list[dict[str, tuple[float, float]]] = field(default_factory=list)  # metric -> (OSSA, Celery)
    costs: list[dict[str, tuple[float, float]]] = field(default_factory=list)  # 6b row -> (orch RT, CPU ms)

    @property
    def python(self) -> str:
        venv = self.root / ".venv" / "bin" / "python"
        return str(venv) if venv.exists() else sys.executable

    def values(self, metric: str, column: int) -> list[float]:
        """Column 0: OSSA tasks/s, 1: Celery tasks/s, 2: OSSA/Celery of the same run."""
        out = []
        for run in self.runs:
            if metric in run:
                ossa, celery = run[metric]
                out.append((ossa, celery, ossa / celery if celery else float("nan"))[column])
        return out


def parse_rows(text: str) -> dict[str, tuple[float, float]]:
    """(OSSA, Celery) of every tasks/s row of bench_orchestrator's section 7."""
    rows = {}
    for line in text.splitlines():
        match = ROW.match(line)
        if match:
            rows[match.group(1).strip()] = (float(match.group(2)), float(match.group(3)))
    return rows


def parse_costs(text: str) -> dict[str, tuple[float, float]]:
    """(orchestrator round trips, orchestrator CPU ms) per completed task of every section-6b row."""
    rows = {}
    for line in text.splitlines():
        match = COST.match(line)
        if match and "-" not in (match.group(5), match.group(7)):
            rows[match.group(1).strip()] = (float(match.group(5)), float(match.group(7)))
    return rows


def run_once(side: Side, bench_args: list[str], log_dir: Path, index: int) -> None:
    command = [side.python, "benchmarks/bench_orchestrator.py", *bench_args]
    began = time.monotonic()
    done = subprocess.run(command, cwd=side.root, capture_output=True, text=True, check=False)
    log = log_dir / f"{side.name}-{index}.txt"
    log.write_text(done.stdout + done.stderr)
    rows = parse_rows(done.stdout)
    side.runs.append(rows)
    side.costs.append(parse_costs(done.stdout))
    status = f"{len(rows)} rows" if rows else f"no rows (exit {done.returncode}; see {log})"
    print(f"  {side.name} run {index}: {time.monotonic() - began:.0f} s, {status}", flush=True)


def spread(values: list[float], digits: int) -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    return f"{median:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def print_side(side: Side, metrics: list[str]) -> None:
    print(f"\n{side.name} ({side.root}), {len(side.runs)} runs: median (min-max)")
    header = f"{'metric':<58} {'OSSA tasks/s':>22} {'Celery tasks/s':>22} {'OSSA/Celery':>18}"
    print(header)
    print("-" * len(header))
    for metric in metrics:
        print(f"{metric:<58} {spread(side.values(metric, 0), 0):>22} {spread(side.values(metric, 1), 0):>22} "
              f"{spread(side.values(metric, 2), 2):>18}")  # fmt: skip


def print_costs(sides: list[Side]) -> None:
    """Orchestrator CPU ms per task (section 6b): steadier from run to run than tasks/s."""
    rows = list(dict.fromkeys(r for side in sides for run in side.costs for r in run))
    if not rows:
        return
    print("\norchestrator CPU ms per completed task (section 6b; issue 12: <= 0.5), median (min-max)")
    header = f"{'row':<20}" + "".join(f"{side.name:>22}" for side in sides)
    if len(sides) == 2:
        header += f"{'after/before':>14}"
    print(header)
    print("-" * len(header))
    for row in rows:
        values = [[run[row][1] for run in side.costs if row in run] for side in sides]
        line = f"{row:<20}" + "".join(f"{spread(v, 2):>22}" for v in values)
        if len(sides) == 2 and all(values):
            line += f"{statistics.median(values[1]) / statistics.median(values[0]):>14.2f}"
        print(line)


def print_change(before: Side, after: Side, metrics: list[str]) -> None:
    print(f"\nafter/before, medians of {len(after.runs)} and {len(before.runs)} alternating runs")
    header = f"{'metric':<58} {'before':>10} {'after':>10} {'after/before':>13} {'ratio to Celery':>18}"
    print(header)
    print("-" * len(header))
    for metric in metrics:
        old, new = before.values(metric, 0), after.values(metric, 0)
        if not old or not new:
            continue
        m_old, m_new = statistics.median(old), statistics.median(new)
        r_old, r_new = statistics.median(before.values(metric, 2)), statistics.median(after.values(metric, 2))
        ratios = f"{r_old:.2f} -> {r_new:.2f}"
        print(f"{metric:<58} {m_old:>10.0f} {m_new:>10.0f} {m_new / m_old:>13.2f} {ratios:>18}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per checkout (default 3)")
    parser.add_argument("--before", type=Path, help="another checkout, run alternately with this one")
    parser.add_argument("--logs", type=Path, default=Path("/tmp/ossa-bench-repeat"), help="each run's full output")
    parser.add_argument("bench_args", nargs="*", help=f"bench_orchestrator.py arguments after -- ({DEFAULT_ARGS})")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs: at least 1")
    args.logs.mkdir(parents=True, exist_ok=True)
    bench_args = args.bench_args or DEFAULT_ARGS
    after = Side("after" if args.before else "this checkout", HERE)
    sides = ([Side("before", args.before.resolve())] if args.before else []) + [after]
    print(f"bench_orchestrator.py {' '.join(bench_args)}: {args.runs} runs per checkout, logs in {args.logs}")
    for index in range(1, args.runs + 1):
        for side in sides:
            run_once(side, bench_args, args.logs, index)
    metrics = list(dict.fromkeys(m for side in sides for run in side.runs for m in run))
    if not metrics:
        print("no tasks/s rows were printed: is Celery installed (pip install -e '.[bench]')?")
        return 1
    for side in sides:
        print_side(side, metrics)
    if args.before:
        print_change(sides[0], after, metrics)
    print_costs(sides)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
