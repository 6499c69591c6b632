"""`ossa healthcheck HOST:PORT [SERVICE]`: a grpc.health.v1 probe for containers.

Docker's HEALTHCHECK (grpc_health_probe is not in the images): exit 0 when the server answers
SERVING, 1 otherwise, with the reason on stderr; 2 for bad arguments or settings. TLS follows the
OSSA_GRPC_TLS_* settings. `python -m ossa_cli.healthcheck HOST:PORT [SERVICE]` works the same.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from ossa_cli.probes import grpc_health
from ossa_runtime.settings import Settings, SettingsError

USAGE = "usage: python -m ossa_cli.healthcheck HOST:PORT [SERVICE]"


def add_healthcheck_command(sub: Any) -> None:
    """Add `ossa healthcheck` to the `ossa` parser's subcommands."""
    healthcheck = sub.add_parser(
        "healthcheck",
        help="probe a gRPC server's health (grpc.health.v1): exit 0 when it is SERVING, else 1",
        description="Ask a server for its grpc.health.v1 status, as Docker's HEALTHCHECK does: exit 0 "
        "when it answers SERVING, 1 otherwise (the reason on stderr). TLS follows the OSSA_GRPC_TLS_* settings.",
    )
    healthcheck.add_argument("target", metavar="HOST:PORT", type=_target, help="the server's address")
    healthcheck.add_argument(
        "service", metavar="SERVICE", nargs="?", default="", help="a service name (default: the whole server)"
    )
    healthcheck.set_defaults(command=cmd_healthcheck)


def _target(value: str) -> str:
    if ":" not in value:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT")
    return value


def cmd_healthcheck(args: argparse.Namespace) -> int:
    return check(args.target, args.service)


def check(target: str, service: str = "") -> int:
    """Probe `target` once: 0 SERVING, 1 anything else, 2 bad settings (the reason on stderr)."""
    try:
        settings = Settings.from_env()
    except SettingsError as err:
        print(f"healthcheck: {err}", file=sys.stderr)
        return 2
    probe = grpc_health(target, service, timeout=3.0, settings=settings)

    async def run() -> None:
        await probe()

    try:
        asyncio.run(run())
    except Exception as err:  # any failure is "unhealthy"; say why
        print(f"healthcheck: {target}: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m ossa_cli.healthcheck HOST:PORT [SERVICE]`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not 1 <= len(args) <= 2 or ":" not in args[0]:
        print(USAGE, file=sys.stderr)
        return 2
    return check(args[0], args[1] if len(args) == 2 else "")


if __name__ == "__main__":
    sys.exit(main())
