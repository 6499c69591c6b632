"""CPU accounting for the benchmarks: where the machine's time went during a section, per component.

Read from /proc: utime + stime of each process and of the children it has waited for. Components
are named by their command line (orchestrator, registry, envoy, postgres, ...). `CpuMeter` counts
the process trees under `roots` (e.g. `ossa up`, by its children) and the processes in `own`
themselves (e.g. `ossa agent serve` processes this benchmark started), plus this process.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Command-line fragment -> component; the first match wins.
LABELS = (
    ("agent serve", "ossa agents"),
    ("null_orchestrator", "orchestrator"),  # bench_dispatch_ceiling.py's stand-in
    ("orchestrator_svc", "orchestrator"),
    ("registry_svc", "registry"),
    ("gateway_http", "gateway svc"),
    ("monitoring", "monitoring"),
    ("search_svc", "search"),
    ("envoy", "envoy"),
    ("valkey", "valkey"),
    ("redis", "valkey"),
    ("postgres", "postgres"),
    ("celery", "celery worker"),
)


def processes() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, CPU seconds of the process and of its children it has waited for)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields_ = raw[raw.rindex(")") + 2 :].split()
        ticks = sum(int(x) for x in fields_[11:15])  # utime, stime, cutime, cstime
        table[int(entry)] = (int(fields_[1]), ticks / CLOCK_TICKS)
    return table


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def label(pid: int) -> str:
    cmd = command_line(pid)
    for needle, name in LABELS:
        if needle in cmd:
            return name
    return "other"


def children_of(table: dict[int, tuple[int, float]]) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    return children


def subtree_seconds(pid: int, table: dict[int, tuple[int, float]], children: dict[int, list[int]]) -> float:
    stack, total = [pid], 0.0
    while stack:
        current = stack.pop()
        total += table[current][1]
        stack.extend(children.get(current, []))
    return total


def count_processes(root: int | None, needle: str) -> int:
    """Processes whose command line contains `needle` (under `root`, or anywhere), not counting
    those whose parent matches too (a service's own helper processes)."""
    table = processes()
    children = children_of(table)
    pids = list(table) if root is None else _descendants(root, children)
    matching = {pid for pid in pids if needle in command_line(pid)}
    return sum(table[pid][0] not in matching for pid in matching)


def _descendants(root: int, children: dict[int, list[int]]) -> list[int]:
    out, stack = [], list(children.get(root, []))
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


class CpuMeter:
    """CPU seconds per component: the subtrees under `roots` by name, the `own` processes, this process."""

    def __init__(self) -> None:
        self.roots: list[int] = []
        self.own: list[int] = []
        self.notes: list[str] = []
        self.last: dict[str, float] = {}  # CPU seconds per component in the last measure()

    def snapshot(self) -> dict[str, float]:
        table = processes()
        children = children_of(table)
        out: dict[str, float] = {"bench client": time.process_time()}
        tops = [child for root in self.roots if root in table for child in children.get(root, [])]
        for pid in tops + [p for p in self.own if p in table]:
            name = label(pid)
            out[name] = out.get(name, 0.0) + subtree_seconds(pid, table, children)
        return out

    @contextlib.contextmanager
    def measure(self, what: str) -> Iterator[None]:
        before, wall = self.snapshot(), time.monotonic()
        yield
        after, wall = self.snapshot(), time.monotonic() - wall
        # A process that exited during the section (an agent stopped) drops out of `after`.
        self.last = {k: max(0.0, after.get(k, 0.0) - before.get(k, 0.0)) for k in after.keys() | before.keys()}
        busy = sorted(((v, k) for k, v in self.last.items() if v >= 0.05), reverse=True)
        parts = ", ".join(f"{k} {v:.1f}" for v, k in busy)
        self.notes.append(f"  CPU seconds during {what} (wall {wall:.1f} s, {os.cpu_count()} cores): {parts}")

    def flush(self) -> None:
        for note in self.notes:
            print(note)
        self.notes.clear()
