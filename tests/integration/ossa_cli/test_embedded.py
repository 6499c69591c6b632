"""The embedded PostgreSQL and Valkey really run, and keep their data across restarts and crashes."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from ossa_cli.embedded import EmbeddedServerError, serving, start_server
from ossa_cli.ports import free_port
from ossa_cli.postgres import EmbeddedPostgres
from ossa_cli.valkey import EmbeddedValkey
from tests.servers import embedded_postgres, embedded_valkey

pytestmark = pytest.mark.integration


async def test_postgres_keeps_data_across_restarts(tmp_path: Path) -> None:
    with embedded_postgres(tmp_path) as url:
        assert url.startswith("postgresql://ossa:") and url.endswith("/ossa_isolated")
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)")
            await conn.execute("INSERT INTO notes (body) VALUES ('kept')")
            assert await conn.fetchval("SELECT gen_random_uuid() IS NOT NULL")
        finally:
            await conn.close()
    password = (tmp_path / "postgres" / "password").read_text()
    assert (tmp_path / "postgres" / "password").stat().st_mode & 0o077 == 0
    assert (tmp_path / "postgres" / "data").stat().st_mode & 0o077 == 0

    with embedded_postgres(tmp_path) as url:  # a new port; the cluster is reused, not re-created
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT body FROM notes") == "kept"
        finally:
            await conn.close()
    assert (tmp_path / "postgres" / "password").read_text() == password
    assert not list((tmp_path / "postgres").glob(".pwfile-*"))  # initdb's password file is gone
    log = (tmp_path / "logs" / "postgres.log").read_text()
    assert log.count("database system is ready to accept connections") == 2


async def test_postgres_refuses_wrong_password(tmp_path: Path) -> None:
    server = EmbeddedPostgres.in_data_dir(tmp_path, free_port())
    with serving(server), pytest.raises(asyncpg.InvalidPasswordError):
        conn = await asyncpg.connect(f"postgresql://ossa:wrong@127.0.0.1:{server.port}/ossa_isolated")
        await conn.close()


async def test_postgres_recovers_after_a_crash(tmp_path: Path) -> None:
    server = EmbeddedPostgres.in_data_dir(tmp_path, free_port())
    running = start_server(server)
    conn = await asyncpg.connect(running.url)
    try:
        await conn.execute("CREATE TABLE t (v int); INSERT INTO t VALUES (42)")
    finally:
        await conn.close()
    running.proc.kill()  # SIGKILL: postmaster.pid stays behind
    running.proc.wait()
    assert (server.data_path / "postmaster.pid").exists()

    with serving(server) as again:
        conn = await asyncpg.connect(again.url)
        try:
            assert await conn.fetchval("SELECT v FROM t") == 42
        finally:
            await conn.close()


async def test_postgres_restarts_after_a_crash_that_left_a_backend_behind(tmp_path: Path) -> None:
    server = EmbeddedPostgres.in_data_dir(tmp_path, free_port())
    running = start_server(server)
    conn = await asyncpg.connect(running.url)
    await conn.execute("CREATE TABLE t (v int); INSERT INTO t VALUES (7)")
    backend = conn.get_server_pid()
    os.kill(backend, signal.SIGSTOP)  # stopped: it cannot notice that its postmaster is gone
    try:
        running.proc.kill()
        running.proc.wait()
        with pytest.raises(EmbeddedServerError, match="pre-existing shared memory block"):
            start_server(server, timeout=20)  # what `ossa up` would run into without clearing
        server.clear_leftovers()
        with serving(server) as again:
            check = await asyncpg.connect(again.url)
            try:
                assert await check.fetchval("SELECT v FROM t") == 7
            finally:
                await check.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(backend, signal.SIGKILL)
        conn.terminate()


def test_clearing_drops_a_postmaster_pid_naming_another_process(tmp_path: Path) -> None:
    server = EmbeddedPostgres.in_data_dir(tmp_path, free_port())
    server.data_path.mkdir(parents=True)
    lock = server.data_path / "postmaster.pid"
    lock.write_text(f"{os.getpid()}\n{server.data_path}\n")  # a reused PID: this test's own process
    server.clear_leftovers()
    assert not lock.exists()
    lock.write_text(f"{2**22 + 1}\n{server.data_path}\n")  # a dead one: PostgreSQL sees to it itself
    server.clear_leftovers()
    assert lock.exists()


async def test_postgres_start_failure_shows_its_log(tmp_path: Path) -> None:
    with embedded_postgres(tmp_path):
        pass
    (tmp_path / "postgres" / "data" / "postgresql.conf").write_text("this is not a setting\n")
    with pytest.raises(EmbeddedServerError, match="postgres exited") as err:
        start_server(EmbeddedPostgres.in_data_dir(tmp_path, free_port()), timeout=20)
    assert "postgresql.conf" in str(err.value)


async def test_valkey_keeps_data_across_restarts(tmp_path: Path) -> None:
    with embedded_valkey(tmp_path) as url:
        client = aioredis.Redis.from_url(url)
        try:
            await client.set("ossa:test", "kept")
            await client.xadd("ossa:stream", {"k": "v"})
        finally:
            await client.aclose()
    with embedded_valkey(tmp_path) as url:
        client = aioredis.Redis.from_url(url)
        try:
            assert await client.get("ossa:test") == b"kept"
            assert await client.xlen("ossa:stream") == 1
        finally:
            await client.aclose()
    assert (tmp_path / "redis" / "appendonlydir").is_dir()


async def test_a_busy_port_is_refused_before_starting(tmp_path: Path) -> None:
    with embedded_valkey(tmp_path / "one") as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(EmbeddedServerError, match=f"redis: port {port} .* already in use"):
            start_server(EmbeddedValkey.in_data_dir(tmp_path / "two", port), timeout=20)
    assert not (tmp_path / "two").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as nobody")
def test_as_root_postgres_runs_as_nobody(tmp_path: Path) -> None:
    import pwd

    server = EmbeddedPostgres.in_data_dir(tmp_path, free_port())
    with serving(server) as running:
        status = Path(f"/proc/{running.pid}/status").read_text()
        uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
        assert int(uid) == pwd.getpwnam("nobody").pw_uid
    assert server.data_path.stat().st_uid == pwd.getpwnam("nobody").pw_uid
    assert server.password_path.stat().st_uid == 0
