"""Real agent processes for the benchmarks: `ossa agent serve --handler echo`, as a user runs them.

Each process registers under its own name, connects to the gateway and runs its slots; its output
goes to a log file in `log_dir`. `token_for(name)` gives the bearer token each one sends (an agent
token naming it when the benchmark started the platform, else the benchmark's own token).
`handler` is any `--handler` value (a built-in or MODULE:FUNC); `spawn()` adds one more agent and
`signal(name, sig)` reaches one (the fault suite stops, resumes and kills them one by one).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.platform import ossa_executable

TokenFor = Callable[[str], str]


class CliAgents:
    """`count` processes of `ossa agent serve --handler HANDLER --slots slots --capability capability`."""

    def __init__(self, gateway: str, capability: str, count: int, slots: int, log_dir: Path,
                 token_for: TokenFor, env: dict[str, str] | None = None, handler: str = "echo",
                 log_level: str = "warning", prefix: str = "bench-cli") -> None:  # fmt: skip
        self.gateway, self.capability, self.count, self.slots = gateway, capability, count, slots
        self.log_dir, self.token_for = log_dir, token_for
        self.env = dict(os.environ if env is None else env)
        self.handler, self.log_level, self.prefix = handler, log_level, prefix
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        for _ in range(self.count):
            self.spawn()

    def spawn(self) -> str:
        """Start one more agent process (a new name); returns its name."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        name = f"{self.prefix}-{secrets.token_hex(3)}"
        argv = [
            ossa_executable(), "agent", "serve", "--name", name, "--type", "worker",
            "--capability", self.capability, "--handler", self.handler, "--slots", str(self.slots),
            "--gateway", self.gateway, "--log-level", self.log_level,
        ]  # fmt: skip
        env = {**self.env, "OSSA_TOKEN": self.token_for(name)}
        with self.log_path(name).open("wb") as out:
            self.procs[name] = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        return name

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def signal(self, name: str, sig: signal.Signals) -> None:
        """Send `sig` to one agent; SIGKILL also reaps it."""
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(sig)
            if sig == signal.SIGKILL:
                proc.wait()

    def alive(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.poll() is None]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs.values()]

    def exited(self) -> list[str]:
        """The agents that are no longer running, each with its exit code and the end of its log."""
        return [
            f"agent {name} exited with {proc.returncode}:\n{self.tail(name)}"
            for name, proc in self.procs.items()
            if proc.poll() is not None
        ]

    def tail(self, name: str, lines: int = 15) -> str:
        path = self.log_path(name)
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 15.0, names: list[str] | None = None) -> None:
        """SIGTERM (the agent finishes or hands back its tasks), then SIGKILL after `grace`; every
        agent, or those named."""
        procs = [self.procs[n] for n in names] if names is not None else list(self.procs.values())
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)  # a stopped agent cannot act on SIGTERM
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
