"""Addresses in Envoy's config: which cluster type dials a host, and a concrete address for a wildcard."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def loopback(host: str) -> str:
    """Services bind `host`; Envoy must dial a concrete address, not a wildcard."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def cluster_type(hosts: Iterable[str]) -> str:
    """STATIC when every host is an IP address, else STRICT_DNS (names are resolved by Envoy)."""
    try:
        for host in hosts:
            ipaddress.ip_address(host)
    except ValueError:
        return "STRICT_DNS"
    return "STATIC"
