"""`ossa health`: the platform's health report (GET /api/v1/health) from the terminal.

Exit code 0 when every enabled component is healthy, 1 otherwise (the report is printed either way).
`ossa healthcheck HOST:PORT` is the container probe of one service; this is the operator's view.
"""

from __future__ import annotations

import argparse
from typing import Any

from ossa.gateway.v1 import gateway_pb2 as pb
from ossa.gateway.v1 import gateway_pb2_grpc
from ossa_cli import output
from ossa_cli.commands import call, sync
from ossa_cli.output import field
from ossa_cli.remote import FAILED, OK, add_connection_arguments

COMPONENT_COLUMNS: list[output.Column] = [
    ("name", field("name")),
    ("kind", field("kind")),
    ("state", field("state")),
    ("target", field("target")),
    ("latency_ms", field("latency_ms", "0")),
    ("message", field("message")),
]


def add_health_command(sub: Any) -> None:
    """Add `ossa health` to the `ossa` parser's subcommands."""
    health = sub.add_parser("health", help="the platform's health, component by component", description=__doc__)
    add_connection_arguments(health)
    health.set_defaults(command=sync(_health))


async def _health(args: argparse.Namespace) -> int:
    reply = await call(args, gateway_pb2_grpc.GatewayServiceStub, "GetHealth", pb.GetHealthRequest(), "health")
    if output.choose(args.output) == "json":
        output.emit(reply, COMPONENT_COLUMNS, "json")
    else:
        state = pb.HealthState.Value.Name(reply.status)
        print(f"platform {reply.version}: {state}", flush=True)
        output.emit(list(reply.components), COMPONENT_COLUMNS, "table")
    return OK if reply.status == pb.HealthState.healthy else FAILED
