"""Shared fixtures of the ossa_cli unit tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest


@pytest.fixture
def offered_ports(monkeypatch: pytest.MonkeyPatch) -> Callable[[Iterable[int]], None]:
    """Make ossa_cli.ports' sockets bind to these ports in turn, as if the OS offered them."""

    def offer(ports: Iterable[int]) -> None:
        offered = iter(ports)

        class Sock:
            def __init__(self, *_: object) -> None:
                self.port = 0

            def bind(self, _address: object) -> None:
                self.port = next(offered)

            def getsockname(self) -> tuple[str, int]:
                return ("127.0.0.1", self.port)

            def close(self) -> None:
                pass

        monkeypatch.setattr("ossa_cli.ports.socket.socket", Sock)

    return offer
