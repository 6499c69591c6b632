"""The child processes `ossa up` supervises: what to run (Component), a running one (Child), and
how a start that failed or was interrupted is reported."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ossa_cli.embedded import log_tail
from ossa_cli.probes import Probe


@dataclass
class Component:
    """One child process. `prepare` (blocking, run in a thread) runs before `argv`/`env` are read at
    the first start; `recover` (the same way) before each restart after a crash, e.g. to clear what
    the dead process left behind."""

    name: str
    argv: Callable[[], Sequence[str]]
    log_path: Path
    address: str
    ready: Probe
    env: Callable[[], Mapping[str, str]] | None = None
    prepare: Callable[[], None] | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = 10.0
    recover: Callable[[], None] | None = None


@dataclass
class Child:
    component: Component
    proc: asyncio.subprocess.Process
    log_offset: int
    exited: asyncio.Future[int] = field(repr=False)

    @property
    def name(self) -> str:
        return self.component.name

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, lines: int = 20) -> str:
        return log_tail(self.component.log_path, self.log_offset, lines)

    async def wait(self) -> int:
        """Its exit code, once it has exited (a waiter that is cancelled leaves `exited` alone)."""
        return await asyncio.shield(self.exited)


class StartupError(RuntimeError):
    def __init__(self, component: str, reason: str, log_path: Path | None, tail: str) -> None:
        super().__init__(f"{component}: {reason}")
        self.component = component
        self.reason = reason
        self.log_path = log_path
        self.tail = tail

    def report(self) -> str:
        text = str(self)
        if self.log_path is not None:
            text += f"\nlast lines of {self.log_path}:\n{indent(self.tail) if self.tail else '  (empty)'}"
        return text


class Interrupted(Exception):
    """A stop was requested while starting."""


def indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def exit_status(code: int | None) -> str:
    if code is None:
        return "is running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
