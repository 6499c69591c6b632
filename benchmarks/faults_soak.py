"""Soak mode of benchmarks/faults.py: the same workload at half the measured capacity for `--minutes`,
then the same checks as a scenario row, plus memory and latency drift.

1. Capacity: 1,500 one-step executions started as fast as 16 callers go (benchmarks/loadgen.py);
   tasks/s = completed / (first start sent -> last completed_at).
2. The soak: the mixed workload at half of that (in tasks/s; 2.6 tasks per execution), no fault.
   A progress line every minute (or a tenth of the run).
3. Memory: RSS and private anonymous RSS (RssAnon) of every process (`ossa up`, each part it runs,
   each agent, this process) at the start, after the warm-up (a fifth of the run, at most a
   minute) and at the end. A process fails the soak when its private memory grows more than 20 %
   (and more than 8 MiB) from the warm-up to the end. Private memory, not RSS: RSS also counts the
   shared pages a process touches (PostgreSQL's shared buffers, mapped files), which grow with use
   and are no leak. PostgreSQL's backends are summed into one informational line (the pools open
   and close them).
4. Latency: each execution's started_at -> completed_at (PostgreSQL's clock) for the workflows
   without designed failures (one, dag5); p99 of the first window after the warm-up against the
   last window (a minute each, at most a third of the rest). A last p99 over twice the first fails.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks import auth
from benchmarks.faults import Options, Row, Suite, format_row, print_table
from benchmarks.faults_checks import wait_final
from benchmarks.faults_load import definitions, publish, tasks_per_execution
from benchmarks.faults_rig import CAPABILITY, Rig, rss_table
from benchmarks.faults_scenarios import Run, Scenario
from benchmarks.loadgen import grpc_starts
from benchmarks.report import percentile_ms

GROWTH, GROWTH_FLOOR_KIB, DRIFT = 0.20, 8 * 1024, 2.0
STEADY_KINDS = ("one", "dag5")
AGGREGATES = ("postgres backends",)


async def measure_capacity(rig: Rig, n: int = 1500) -> float:
    """Completed one-step tasks per second with starts as fast as 16 callers go."""
    os.environ[auth.TOKEN_ENV] = rig.token  # benchmarks/loadgen.py sends it
    workflow = (await publish(rig.gateway, rig.token, {"one": definitions(CAPABILITY, rig.lease_seconds)["one"]},
                              "capacity"))["one"]  # fmt: skip
    starts = await grpc_starts(rig.gateway, workflow, n, in_flight=16)
    await wait_final(rig.db, [workflow], 300)
    [row] = await rig.db.fetch(
        """SELECT count(*) FILTER (WHERE status = 'completed') AS n,
                  extract(epoch FROM max(completed_at))::float8 AS last FROM executions WHERE workflow_id = $1""",
        workflow,
    )
    return float(row["n"]) / max(1e-3, float(row["last"] or starts.first) - starts.first)


@dataclass
class Samples:
    rss: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)  # when -> process -> KiB
    began: float = 0.0
    warm: float = 0.0  # seconds of warm-up


def _progress_inject(rig: Rig, duration: float, samples: Samples) -> Any:
    async def inject(run: Run) -> None:
        run.hit()
        samples.began = run.fault_at
        step = min(60.0, duration / 10)
        samples.rss["start"] = rss_table(rig)
        while (elapsed := time.time() - samples.began) < duration:
            await asyncio.sleep(min(step, duration - elapsed))
            elapsed = time.time() - samples.began
            if "warm" not in samples.rss and elapsed >= samples.warm:
                samples.rss["warm"] = rss_table(rig)
            [row] = await rig.db.fetch(
                "SELECT count(*) FILTER (WHERE status = 'completed') AS ok, count(*) AS n FROM executions "
                "WHERE workflow_id = ANY($1::uuid[])",
                list(run.workflows.values()),
            )
            print(f"  soak {elapsed:6.0f}s: {row['n']} executions started, {row['ok']} completed", flush=True)
        samples.rss["end"] = rss_table(rig)

    return inject


async def latencies(rig: Rig, workflow_ids: list[str]) -> list[tuple[float, float]]:
    rows = await rig.db.fetch(
        """SELECT extract(epoch FROM started_at)::float8 AS s,
                  extract(epoch FROM completed_at - started_at)::float8 AS d
             FROM executions WHERE workflow_id = ANY($1::uuid[]) AND status = 'completed'""",
        workflow_ids,
    )
    return [(float(r["s"]), float(r["d"])) for r in rows]


def p99(points: list[tuple[float, float]], start: float, end: float) -> tuple[float, int]:
    window = [d for s, d in points if start <= s < end]
    return percentile_ms(window, 0.99), len(window)


def memory_verdicts(samples: Samples) -> list[str]:
    """Print the RSS table; the processes whose private memory grew too much after the warm-up."""
    start, warm, end = (samples.rss.get(k, {}) for k in ("start", "warm", "end"))
    print(f"\n{'process':<30} {'RSS start':>10} {'RSS warm':>10} {'RSS end':>10} {'anon warm':>10} {'anon end':>10}"
          f" {'growth':>7}  (MiB)")  # fmt: skip
    problems = []
    for name in sorted(start.keys() | end.keys()):
        s, w, e = start.get(name, (0, 0)), warm.get(name, (0, 0)), end.get(name, (0, 0))
        growth = (e[1] - w[1]) / w[1] if w[1] and e[1] else 0.0
        mark = ""
        if name not in AGGREGATES and w[1] and e[1] and growth > GROWTH and e[1] - w[1] > GROWTH_FLOOR_KIB:
            problems.append(f"{name}: private memory {w[1] / 1024:.0f} -> {e[1] / 1024:.0f} MiB (+{growth:.0%})")
            mark = "  TOO MUCH"
        elif name in AGGREGATES:
            mark = "  (informational)"
        print(f"{name:<30} {s[0] / 1024:>10.1f} {w[0] / 1024:>10.1f} {e[0] / 1024:>10.1f} {w[1] / 1024:>10.1f} "
              f"{e[1] / 1024:>10.1f} {growth:>7.0%}{mark}")  # fmt: skip
    return problems


async def soak(rig: Rig, minutes: float) -> int:
    capacity = await measure_capacity(rig)
    per = tasks_per_execution()
    rate = capacity / 2 / per
    duration = minutes * 60
    samples = Samples(warm=min(60.0, duration / 5))
    print(f"capacity {capacity:.0f} tasks/s; soaking at {rate:.1f} executions/s ({rate * per:.0f} tasks/s) "
          f"for {duration:.0f}s, warm-up {samples.warm:.0f}s", flush=True)  # fmt: skip
    scenario = Scenario(
        "soak", f"soak {minutes:g} min at {rate * per:.0f} tasks/s", _progress_inject(rig, duration, samples)
    )
    suite = Suite(rig, Options(rate=rate, before=0.0, after=0.0, quiesce=300.0))
    row: Row = await suite.run(scenario)
    print_table([row])
    problems = memory_verdicts(samples)
    points = await latencies(rig, [row.workflows[k] for k in STEADY_KINDS])
    window = min(60.0, (duration - samples.warm) / 3)
    first_at, last_at = samples.began + samples.warm, samples.began + duration - window
    first, n_first = p99(points, first_at, first_at + window)
    last, n_last = p99(points, last_at, last_at + window)
    print(f"\np99 started -> completed ({', '.join(STEADY_KINDS)}): {first:.0f} ms in the first window after the "
          f"warm-up ({n_first} executions), {last:.0f} ms in the last ({n_last}); {window:.0f}s windows")  # fmt: skip
    for t in range(0, int(duration), int(max(window, 1))):
        value, n = p99(points, samples.began + t, samples.began + t + window)
        print(f"  {t:5d}s  p99 {value:8.0f} ms  ({n} executions)")
    if last > DRIFT * first:
        problems.append(f"p99 drifted {last / first:.1f}x (limit {DRIFT:g}x)")
    print(format_row(row))
    for problem in problems:
        print(f"  soak: {problem}")
    return 0 if row.ok and not problems else 1
