"""Fault suite: kill, restart and cut every part of the platform under load, and count what was lost.

    python benchmarks/faults.py                        # every scenario (~4 min on 2 cores)
    python benchmarks/faults.py --scenarios 1,2,5b     # some of them (2 = 2a and 2b)
    python benchmarks/faults.py --scenarios 1 --repeat 5 --rate 50   # one of them, again and again, harder
    python benchmarks/faults.py --soak --minutes 10    # soak at half the measured capacity

It starts its own platform as `ossa up --orchestrators 2` does (free loopback ports, a temporary
data directory) and `--agents` processes of `ossa agent serve --handler
benchmarks.faults_handler:handle`, then runs each scenario of benchmarks/faults_scenarios.py in
turn: a steady load of executions (benchmarks/faults_load.py: one-step and 5-step DAGs, some
with a first attempt that fails, a few meant to fail), the fault while it runs, `--after` more
seconds of load, then quiescence (every execution final, bounded) and the checks of
benchmarks/faults_checks.py. Row 0 is the same without a fault. One row per scenario:

    started / completed / failed   executions of the scenario's workflows (failed: the doomed ones)
    lost                           not final, an acknowledged start or completion not in PostgreSQL,
                                   results that disagree with the tasks (must be 0)
    double                         a task with two accepted completions (must be 0)
    expired / late                 attempts whose lease ran out; reports refused with a stale fencing
                                   token (recorded in late_results)
    acked                          completions the agents saw acknowledged, checked in this row
    recovery                       fault -> the first task completed after it (PostgreSQL's completed_at)
    stall                          the longest time without a completion from the fault to the load's end
    checks                         ok, or which failed (also unexpected failures, leases held by dead
                                   agents or long expired, a Redis mirror unlike PostgreSQL)

Exit code 1 when any check failed in any row (details below the table), 2 on bad arguments.
All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import faults_checks as checks
from benchmarks.faults_checks import Findings, Tally
from benchmarks.faults_load import Load, definitions, publish
from benchmarks.faults_rig import CAPABILITY, Rig, start_rig
from benchmarks.faults_scenarios import Run, Scenario, select
from benchmarks.report import machine_note


@dataclass
class Options:
    rate: float = 20.0  # executions started per second (~52 tasks/s)
    before: float = 5.0  # seconds of load before the fault
    after: float = 10.0  # seconds of load after the injection returned
    quiesce: float = 120.0  # the most to wait for every execution to be final
    mirror_wait: float = 30.0  # the most to wait for the mirror to equal PostgreSQL


@dataclass
class Row:
    scenario: Scenario
    tally: Tally
    findings: Findings
    recovery: float | None
    stall: float
    notes: list[str]
    acked: int  # acknowledged completions checked (new in this row)
    start_errors: int
    workflows: dict[str, str]  # the row's workflow ids by kind

    @property
    def ok(self) -> bool:
        return not self.findings.all()


async def no_fault(run: Run) -> None:
    run.hit()


BASELINE = Scenario("0", "no fault (baseline)", no_fault)


@dataclass
class Suite:
    rig: Rig
    options: Options
    checked: set[tuple[str, int]] = field(default_factory=set)  # acknowledged completions already checked

    async def run(self, scenario: Scenario) -> Row:
        rig, o = self.rig, self.options
        workflows = await publish(rig.gateway, rig.token, definitions(CAPABILITY, rig.lease_seconds), scenario.key)
        run = Run(rig, scenario.key, workflows)
        load = Load(rig.gateway, rig.token, dict(workflows), o.rate)
        load.start()
        try:
            await asyncio.sleep(o.before)
            await scenario.inject(run)
            await asyncio.sleep(o.after)
        finally:
            await load.stop()
        stopped = time.time()
        ids = list(run.workflows.values())
        await checks.wait_final(rig.db, ids, o.quiesce)
        findings = Findings(other=list(run.problems))
        await checks.check_executions(rig.db, run.workflows, findings)
        await checks.check_tasks(rig.db, ids, findings)
        await checks.check_starts(rig.db, load.started, findings)
        acked = await self._check_acked(findings)
        await checks.check_leases(rig.db, rig.dead, findings)
        await checks.check_mirror(rig.db, rig.redis, findings, o.mirror_wait)
        recovery = await checks.first_completion_after(rig.db, ids, run.fault_at)
        stall = await checks.longest_stall(rig.db, ids, run.fault_at, stopped)
        errors = sum(load.errors.values())
        if errors:
            top = "; ".join(f"{text} x{n}" for text, n in load.errors.most_common(2))
            run.notes.append(f"{errors} of {load.calls} starts refused ({top})")
        counts = await checks.tally(rig.db, ids)
        return Row(scenario, counts, findings, recovery, stall, run.notes, acked, errors, dict(run.workflows))

    async def _check_acked(self, findings: Findings) -> int:
        acked = checks.acked_completions(self.rig.agent_logs())
        new = {(t, k) for t, tokens in acked.items() for k in tokens} - self.checked
        touched = {t for t, _ in new}
        await checks.check_acked(self.rig.db, {t: acked[t] for t in touched}, findings)
        self.checked |= new
        return len(new)


HEADER = (f"{'#':<3} {'scenario':<36} {'started':>7} {'completed':>9} {'failed':>6} {'lost':>4} {'double':>6} "
          f"{'expired':>7} {'late':>5} {'acked':>6} {'recovery':>8} {'stall':>6}  checks")  # fmt: skip


def format_row(row: Row) -> str:
    t, f = row.tally, row.findings
    recovery = f"{row.recovery:.2f}s" if row.recovery is not None else "-"
    verdict = "ok" if row.ok else "FAILED: " + ",".join(f.failed_checks())
    counts = f"{t.started:>7} {t.completed:>9} {t.failed:>6} {len(f.lost):>4} {len(f.double):>6} {t.expired:>7}"
    times = f"{t.late_results:>5} {row.acked:>6} {recovery:>8} {row.stall:>5.1f}s"
    return f"{row.scenario.key:<3} {row.scenario.title:<36} {counts} {times}  {verdict}"


def print_table(rows: list[Row]) -> None:
    print(f"\n{HEADER}\n{'-' * len(HEADER)}")
    for row in rows:
        print(format_row(row))
        if row.notes:
            print(f"    {'; '.join(row.notes)}")
    print(
        "  failed = the workload's doomed executions (meant to fail; any other failure fails the checks).\n"
        "  expired = attempts whose lease ran out; late = reports refused with a stale fencing token.\n"
        "  acked = completions the agents saw acknowledged (their logs), each found completed in PostgreSQL.\n"
        "  recovery = fault -> first task completed after it (PostgreSQL's completed_at, same clock);\n"
        "  stall = the longest time without a completion between the fault and the end of the load."
    )
    for row in rows:
        for problem in row.findings.all()[:20]:
            print(f"  row {row.scenario.key}: {problem}")


async def run_suite(rig: Rig, scenarios: list[Scenario], options: Options, baseline: bool = True) -> list[Row]:
    suite = Suite(rig, options)
    rows = []
    print(HEADER, flush=True)
    for scenario in ([BASELINE] if baseline else []) + scenarios:
        row = await suite.run(scenario)
        print(format_row(row), flush=True)
        rows.append(row)
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="all", help="keys or groups: 1,2a,3 (default: all)")
    parser.add_argument("--repeat", type=int, default=1, help="run each scenario this many times (default 1)")
    parser.add_argument("--agents", type=int, default=4, help="`ossa agent serve` processes (default 4)")
    parser.add_argument("--slots", type=int, default=8, help="slots of each agent (default 8)")
    parser.add_argument("--orchestrators", type=int, default=2, help="orchestrator processes (default 2)")
    parser.add_argument("--rate", type=float, default=Options.rate, help="executions started per second")
    parser.add_argument("--before", type=float, default=Options.before, help="seconds of load before each fault")
    parser.add_argument("--after", type=float, default=Options.after, help="seconds of load after each fault")
    parser.add_argument("--soak", action="store_true", help="soak instead: half the capacity, RSS and p99 drift")
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length (default 10)")
    parser.add_argument("--work-dir", type=Path, default=None, help="platform data and logs (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory afterwards")
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace, work_dir: Path) -> int:
    print(f"fault suite in {work_dir}; {machine_note()}", flush=True)
    rig = await start_rig(work_dir, args.agents, args.slots, args.orchestrators)
    try:
        if args.soak:
            from benchmarks.faults_soak import soak

            return await soak(rig, args.minutes)
        options = Options(rate=args.rate, before=args.before, after=args.after)
        rows = await run_suite(rig, [s for s in select(args.scenarios) for _ in range(args.repeat)], options)
        print_table(rows)
        return 0 if all(row.ok for row in rows) else 1
    finally:
        await rig.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        select(args.scenarios)
    except ValueError as err:
        print(f"faults.py: {err}", file=sys.stderr)
        return 2
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="ossa-faults-"))
    try:
        return asyncio.run(main_async(args, work_dir))
    finally:
        if not args.keep and args.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            print(f"work directory kept: {work_dir}")


if __name__ == "__main__":
    sys.exit(main())
