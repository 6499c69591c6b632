"""What the embedded servers (PostgreSQL, Valkey) share: privileges, log files, a blocking runner.

Each server is described by an object following `EmbeddedServer`: it prepares its data directory,
gives the command line of a foreground process and can tell whether that process is ready.
`ossa up` runs these commands under its asyncio supervisor; tests and one-off commands use
`start_server` / `serving`, which block.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Protocol

from ossa_cli.ports import port_is_free

# Used when the launching user is root: PostgreSQL refuses to run as root.
UNPRIVILEGED_USER = "nobody"
UNPRIVILEGED_GROUP = "nogroup"


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be prepared or started; the message says why."""


class EmbeddedServer(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def log_path(self) -> Path: ...

    @property
    def stop_signal(self) -> signal.Signals: ...

    def prepare(self) -> None:
        """Create or check the data directory (blocking; may run a short-lived tool such as initdb)."""

    def argv(self, *, die_with_parent: bool = False) -> list[str]:
        """The command line of the server as a foreground process."""

    def url(self) -> str: ...

    def ping_sync(self) -> bool:
        """Whether the server answers now (blocking)."""

    async def ping(self) -> None:
        """Return when the server answers; raise otherwise."""


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _setpriv() -> str | None:
    return shutil.which("setpriv") if sys.platform.startswith("linux") else None


def unprivileged_ids() -> tuple[int, int]:
    import grp
    import pwd

    try:
        uid = pwd.getpwnam(UNPRIVILEGED_USER).pw_uid
        gid = grp.getgrnam(UNPRIVILEGED_GROUP).gr_gid
    except KeyError:
        raise EmbeddedServerError(
            f"running as root needs the user {UNPRIVILEGED_USER!r} and group {UNPRIVILEGED_GROUP!r} "
            "to run PostgreSQL; create them or run `ossa` as an ordinary user"
        ) from None
    return uid, gid


def command_prefix(*, drop_root: bool, die_with_parent: signal.Signals | None) -> list[str]:
    """`setpriv` options to run a binary as nobody (when root) and/or to die with its parent.

    Dropping root keeps CAP_DAC_READ_SEARCH as an ambient capability so the unprivileged process
    can still traverse into the (often 0700) directories holding the binaries and the data.
    The parent-death signal is a safety net when the supervisor itself is killed with SIGKILL:
    the kernel sends it when the *thread* that started the child exits, so start children from a
    thread that outlives them (the main thread).
    """
    setpriv = _setpriv()
    need_root_drop = drop_root and running_as_root()
    if setpriv is None:
        if need_root_drop:
            raise EmbeddedServerError("running as root needs `setpriv` (util-linux) to drop privileges")
        return []
    args: list[str] = []
    if need_root_drop:
        args += [
            f"--reuid={UNPRIVILEGED_USER}",
            f"--regid={UNPRIVILEGED_GROUP}",
            "--clear-groups",
            "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search",
        ]
    if die_with_parent is not None:
        args += ["--pdeathsig", die_with_parent.name.removeprefix("SIG")]
    return [setpriv, *args] if args else []


def give_to_unprivileged(path: Path) -> None:
    """chown `path` to the unprivileged user when running as root (no-op otherwise)."""
    if running_as_root():
        uid, gid = unprivileged_ids()
        os.chown(path, uid, gid)


# Log files ---------------------------------------------------------------------------------------


def open_log(path: Path) -> tuple[IO[bytes], int]:
    """Open a log for appending; returns the file and the offset where this run's output starts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    log = path.open("ab")
    return log, log.tell()


def log_tail(path: Path, offset: int = 0, lines: int = 20) -> str:
    """The last `lines` lines written to `path` after `offset` (empty if there are none)."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(offset, size - 64 * 1024)
            f.seek(start)
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


# Blocking runner ---------------------------------------------------------------------------------


class RunningServer:
    """An embedded server process started by `start_server`; `stop()` is idempotent."""

    def __init__(self, server: EmbeddedServer, proc: subprocess.Popen[bytes], log_offset: int) -> None:
        self.server = server
        self.proc = proc
        self.log_offset = log_offset
        self.url = server.url()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 30.0) -> None:
        stop_process(self.proc, self.server.stop_signal, timeout)


def stop_process(proc: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> None:
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_server(server: EmbeddedServer, timeout: float = 30.0) -> RunningServer:
    """Prepare, launch and wait until ready (blocking). Call it from the thread that stops it."""
    # Readiness is probed on the port: another server already there would look like this one.
    if not port_is_free(server.host, server.port):
        raise EmbeddedServerError(f"{server.name}: port {server.port} ({server.host}) is already in use")
    server.prepare()
    log, offset = open_log(server.log_path)
    with log:
        proc = subprocess.Popen(
            server.argv(die_with_parent=True),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
    try:
        _wait_until_ready(server, proc, offset, timeout)
    except BaseException:
        stop_process(proc, server.stop_signal, 5.0)
        raise
    return RunningServer(server, proc, offset)


def _wait_until_ready(server: EmbeddedServer, proc: subprocess.Popen[bytes], offset: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = log_tail(server.log_path, offset)
            raise EmbeddedServerError(f"{server.name} exited with code {proc.returncode}:\n{tail}")
        if server.ping_sync() and proc.poll() is None:
            return
        if time.monotonic() > deadline:
            raise EmbeddedServerError(
                f"{server.name} not ready after {timeout:g}s:\n{log_tail(server.log_path, offset)}"
            )
        time.sleep(0.05)


@contextmanager
def serving(server: EmbeddedServer, timeout: float = 30.0) -> Iterator[RunningServer]:
    running = start_server(server, timeout)
    try:
        yield running
    finally:
        running.stop()
