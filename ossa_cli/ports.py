"""Port checks done before `ossa up` starts anything: every port must be free and used once."""

from __future__ import annotations

import socket
from collections.abc import Collection, Iterable
from dataclasses import dataclass


class PortError(RuntimeError):
    """A port cannot be used; the message is one line naming the component and the port."""


@dataclass(frozen=True)
class PortClaim:
    component: str
    host: str
    port: int
    setting: str = ""  # the Settings field naming the port, for the hint in error messages

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now (bound the way servers bind: SO_REUSEADDR)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(host: str, count: int, avoid: Collection[int] = ()) -> list[int]:
    """`count` distinct ports the OS says are free on `host` (all held open until all are chosen),
    none of them in `avoid`: ports configured for something that has not bound them yet."""
    socks: list[socket.socket] = []
    chosen: list[int] = []
    try:
        while len(chosen) < count:  # a port held here is not offered again: at most count + len(avoid) binds
            sock = socket.socket(_family(host), socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
            if port not in avoid:
                chosen.append(port)
        return chosen
    finally:
        for sock in socks:
            sock.close()


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(host, 1)[0]


def check_ports(claims: Iterable[PortClaim]) -> None:
    """Raise PortError for the first port used twice or already in use; ports 0 are skipped."""
    owners: dict[int, PortClaim] = {}
    listed = [c for c in claims if c.port != 0]
    for claim in listed:
        other = owners.get(claim.port)
        if other is not None and other.component != claim.component:
            raise PortError(
                f"{other.component} and {claim.component} are both configured to use port {claim.port}{_hint(claim)}"
            )
        owners.setdefault(claim.port, claim)
    checked: set[tuple[str, int]] = set()
    for claim in listed:
        if (claim.host, claim.port) in checked:
            continue
        checked.add((claim.host, claim.port))
        if not port_is_free(claim.host, claim.port):
            raise PortError(f"{claim.component}: port {claim.port} ({claim.address}) is already in use{_hint(claim)}")


def _hint(claim: PortClaim) -> str:
    if not claim.setting:
        return ""
    flag = "--" + claim.setting.replace("_", "-")
    return f" (choose another with {flag} or OSSA_{claim.setting.upper()})"
