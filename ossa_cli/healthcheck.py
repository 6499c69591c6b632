"""`python -m ossa_cli.healthcheck HOST:PORT [SERVICE]`: a grpc.health.v1 probe for containers.

Docker's HEALTHCHECK (grpc_health_probe is not in the images): exit 0 when the server answers
SERVING, 1 otherwise, with the reason on stderr. TLS follows the OSSA_GRPC_TLS_* settings.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from ossa_cli.probes import grpc_health
from ossa_runtime.settings import Settings, SettingsError


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not 1 <= len(args) <= 2 or ":" not in args[0]:
        print("usage: python -m ossa_cli.healthcheck HOST:PORT [SERVICE]", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
    except SettingsError as err:
        print(f"healthcheck: {err}", file=sys.stderr)
        return 2
    probe = grpc_health(args[0], args[1] if len(args) == 2 else "", timeout=3.0, settings=settings)

    async def check() -> None:
        await probe()

    try:
        asyncio.run(check())
    except Exception as err:  # any failure is "unhealthy"; say why
        print(f"healthcheck: {args[0]}: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
