"""`ossa reindex`: rebuild every search collection from PostgreSQL on the running platform.

    ossa reindex [--token ADMIN_JWT] [--gateway HOST:PORT] [--tls-ca FILE] [--data-dir DIR]

Calls ossa.search.v1.SearchService/Reindex through the gateway as an admin (--token, else
OSSA_TOKEN, else the data directory's `admin.token`, like `ossa token revoke`) and prints how many
agents, workflows and knowledge chunks were indexed. The rebuild runs to its end on the server
even if this command is interrupted.

Exit codes: 0 done, 1 the platform refused or cannot be reached, 2 bad arguments or settings.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import grpc

from ossa.search.v1 import search_pb2, search_pb2_grpc
from ossa_cli.agent import default_gateway
from ossa_cli.errors import TokenError, error
from ossa_cli.token import admin_token
from ossa_runtime import tls
from ossa_runtime.auth.client import bearer_metadata
from ossa_runtime.settings import PREFIX, Settings, SettingsError

REINDEX_TIMEOUT_SECONDS = 600.0  # the gateway's route allows as much (gateway_http.envoy_config.render.SLOW_METHODS)


def add_reindex_command(sub: Any) -> None:
    """Add `ossa reindex` to the `ossa` parser's subcommands."""
    reindex = sub.add_parser(
        "reindex",
        help="rebuild the search collections (agents, workflows, knowledge) from PostgreSQL",
        description="Rebuild every search collection from PostgreSQL on the running platform. Needs an admin token.",
    )
    reindex.add_argument("--token", help="an admin token (default: $OSSA_TOKEN, else the data directory's admin.token)")
    reindex.add_argument(
        "--gateway",
        metavar="HOST:PORT",
        help="the platform's address (default: $OSSA_GATEWAY_HOST:$OSSA_GATEWAY_PORT or 127.0.0.1:3100)",
    )
    reindex.add_argument(
        "--tls-ca",
        metavar="FILE",
        help="dial the gateway over TLS, verifying it with this CA (default: $OSSA_TLS_CA_FILE; TLS is also on "
        "when $OSSA_TLS_CERT_FILE is set)",
    )
    reindex.add_argument(
        "--data-dir", type=Path, help=f"the platform's data directory (default: ${PREFIX}DATA_DIR or ossa up's)"
    )
    reindex.set_defaults(command=cmd_reindex)


async def reindex(
    target: str, bearer: str, *, use_tls: bool = False, ca_file: str | None = None
) -> search_pb2.ReindexResponse:
    if use_tls:
        channel = grpc.aio.secure_channel(target, tls.client_credentials(ca_file=ca_file))
    else:
        channel = grpc.aio.insecure_channel(target)
    async with channel:
        stub = search_pb2_grpc.SearchServiceStub(channel)
        reply: search_pb2.ReindexResponse = await stub.Reindex(
            search_pb2.ReindexRequest(), metadata=bearer_metadata(bearer), timeout=REINDEX_TIMEOUT_SECONDS
        )
        return reply


def cmd_reindex(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
        if args.data_dir is not None:
            settings = settings.replace(data_dir=Path(args.data_dir).expanduser())
        bearer = admin_token(args, settings)
        target = args.gateway or default_gateway()
    except SettingsError as err:
        return error(str(err), 2)
    except TokenError as err:
        return error(str(err), err.code)
    ca_file = args.tls_ca or settings.tls_ca_file or None
    use_tls = bool(ca_file or settings.tls_cert_file)
    try:
        reply = asyncio.run(reindex(target, bearer, use_tls=use_tls, ca_file=ca_file))
    except grpc.aio.AioRpcError as err:
        code = err.code().name if err.code() is not None else "UNKNOWN"
        return error(f"{target} refused to reindex: {code}: {err.details()}", 1)
    except ValueError as err:  # an unreadable --tls-ca
        return error(str(err), 2)
    print(
        f"reindexed {reply.agents} agents, {reply.workflows} workflows, {reply.knowledge_chunks} knowledge chunks",
        flush=True,
    )
    return 0
