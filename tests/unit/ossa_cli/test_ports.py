"""ossa_cli.ports: busy and duplicated ports are found before anything starts."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator

import pytest

from ossa_cli.ports import PortClaim, PortError, check_ports, free_port, free_ports, port_is_free


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_listening_port_is_not_free(listening: int) -> None:
    assert not port_is_free("127.0.0.1", listening)
    assert not port_is_free("0.0.0.0", listening)  # a wildcard bind conflicts with a loopback listener


def test_a_closed_port_is_free() -> None:
    assert port_is_free("127.0.0.1", free_port())


def test_free_ports_are_distinct() -> None:
    ports = free_ports("127.0.0.1", 5)
    assert len(set(ports)) == 5
    assert all(0 < p < 65536 for p in ports)


def test_busy_port_names_component_port_and_flag(listening: int) -> None:
    claims = [
        PortClaim("registry", "127.0.0.1", free_port(), "registry_port"),
        PortClaim("envoy", "0.0.0.0", listening, "gateway_port"),
    ]
    with pytest.raises(PortError) as err:
        check_ports(claims)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"envoy: port {listening} ")
    assert "--gateway-port" in message and "OSSA_GATEWAY_PORT" in message


def test_same_port_for_two_components_is_refused() -> None:
    port = free_port()
    with pytest.raises(PortError, match=f"registry and gateway are both configured to use port {port}"):
        check_ports([PortClaim("registry", "127.0.0.1", port), PortClaim("gateway", "127.0.0.1", port)])


def test_port_zero_and_repeated_claims_of_one_component_pass() -> None:
    port = free_port()
    check_ports([PortClaim("a", "127.0.0.1", 0), PortClaim("b", "127.0.0.1", 0), PortClaim("r", "127.0.0.1", port)])
    check_ports([PortClaim("r", "127.0.0.1", port), PortClaim("r", "127.0.0.1", port)])


def test_free_ports_avoid_ports_configured_for_others(offered_ports: Callable[[Iterable[int]], None]) -> None:
    """The OS may offer a port the settings already name for a service that has not bound it yet;
    it is skipped (held, so the OS offers another)."""
    offered_ports([41001, 41002, 41003, 41004])
    assert free_ports("127.0.0.1", 2, avoid={41001, 41003}) == [41002, 41004]
