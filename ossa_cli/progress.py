"""Live progress of one execution for `ossa run --wait`: a line per step event, a bar on a terminal.

Fed the messages of WatchExecution (the whole state first, then what changed), it prints one line
whenever a step is queued, leased to an agent (which, which attempt), retried, done or failed, and
on a terminal keeps a progress bar under those lines (plain lines only when stderr is not a TTY).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from ossa.orchestrator.v1 import orchestrator_pb2 as pb

BAR_WIDTH = 24
_TS = pb.TaskStatus


@dataclass
class _Seen:
    status: int = 0
    attempt: int = 0


@dataclass
class Progress:
    """Prints what changed in each watch message; `name_of(agent_id)` gives an agent's name if known."""

    steps: int
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    name_of: Callable[[str], str] = lambda agent_id: ""
    clock: Callable[[], float] = time.monotonic
    tty: bool | None = None
    seen: dict[str, _Seen] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    status: str = "pending"

    def __post_init__(self) -> None:
        self.started = self.clock()
        if self.tty is None:
            self.tty = self.stream.isatty()

    def update(self, message: pb.WatchExecutionResponse) -> None:
        self.status = pb.ExecutionStatus.Value.Name(message.execution.status)
        for task in message.tasks:
            for line in self._events(task):
                self._print(line)
        if self.tty:
            self.stream.write("\r\033[K" + self.bar())
            self.stream.flush()

    def finish(self) -> None:
        """End the bar's line (on a terminal)."""
        if self.tty:
            self.stream.write("\r\033[K" + self.bar() + "\n")
            self.stream.flush()

    def bar(self) -> str:
        total = max(self.steps, len(self.seen), 1)
        filled = round(BAR_WIDTH * len(self.done) / total)
        elapsed = self.clock() - self.started
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        return f"[{bar}] {len(self.done)}/{total} steps  {self.status}  {elapsed:.1f}s"

    def _events(self, task: pb.Task) -> list[str]:
        before = self.seen.setdefault(task.id, _Seen())
        lines: list[str] = []
        step = task.name
        if task.attempt > before.attempt and task.agent_id:  # leased (perhaps already past it)
            agent = self.name_of(task.agent_id)
            who = f"{agent} ({task.agent_id})" if agent else task.agent_id
            lines.append(f"{step}: leased to {who}, attempt {task.attempt}")
        if task.status == _TS.pending and (before.status != _TS.pending or task.attempt != before.attempt):
            if task.attempt == 0:
                lines.append(f"{step}: queued")
            else:
                lines.append(f"{step}: attempt {task.attempt} failed ({task.error or 'lease expired'}); queued again")
        if task.status == _TS.completed and before.status != _TS.completed:
            self.done.add(task.id)
            lines.append(f"{step}: done")
        if task.status == _TS.failed and before.status != _TS.failed:
            self.done.add(task.id)
            lines.append(f"{step}: failed: {task.error or 'no reason given'}")
        before.status, before.attempt = task.status, task.attempt
        return lines

    def _print(self, line: str) -> None:
        prefix = "\r\033[K" if self.tty else ""
        self.stream.write(f"{prefix}{line}\n")
        self.stream.flush()
