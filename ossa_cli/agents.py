"""`ossa agents list|get|delete`: the registry from the terminal (`ossa agent serve` runs one).

ossa agents list [--type worker] [--status idle] [--name NAME] [--limit N]
ossa agents get ID
ossa agents delete ID
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ossa.registry.v1 import registry_pb2 as pb
from ossa.registry.v1 import registry_pb2_grpc
from ossa_cli import output
from ossa_cli.commands import call, sync
from ossa_cli.output import field
from ossa_cli.remote import add_connection_arguments

AGENT_COLUMNS: list[output.Column] = [
    ("id", field("id")),
    ("name", field("name")),
    ("type", field("type")),
    ("status", field("status")),
    ("version", field("version")),
    ("capabilities", lambda a: ",".join(a.get("capabilities", []))),
    ("last_heartbeat", field("last_heartbeat")),
]
Stub = registry_pb2_grpc.AgentRegistryServiceStub
TYPES = tuple(v.name for v in pb.AgentType.Value.DESCRIPTOR.values if v.number)
STATUSES = tuple(v.name for v in pb.AgentStatus.Value.DESCRIPTOR.values if v.number)


def add_agents_commands(sub: Any) -> None:
    """Add `ossa agents ...` to the `ossa` parser's subcommands."""
    agents = sub.add_parser("agents", help="list, show and delete registered agents", description=__doc__)
    commands = agents.add_subparsers(title="commands", metavar="COMMAND", required=True)
    listing = commands.add_parser("list", help="list agents, oldest first")
    listing.add_argument("--type", choices=TYPES, help="only this type")
    listing.add_argument("--status", choices=STATUSES, help="only this status")
    listing.add_argument("--name", default="", help="only the agent with this name")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
    add_connection_arguments(listing)
    listing.set_defaults(command=sync(_list))
    get = commands.add_parser("get", help="show one agent")
    get.add_argument("agent_id", metavar="ID")
    add_connection_arguments(get)
    get.set_defaults(command=sync(_get))
    delete = commands.add_parser("delete", help="deregister an agent")
    delete.add_argument("agent_id", metavar="ID")
    add_connection_arguments(delete, output=False)
    delete.set_defaults(command=sync(_delete))


async def _list(args: argparse.Namespace) -> int:
    request = pb.ListAgentsRequest(type=args.type or None, status=args.status or None, name=args.name, limit=args.limit)
    reply = await call(args, Stub, "ListAgents", request, "list agents")
    output.emit(list(reply.agents), AGENT_COLUMNS, args.output)
    return 0


async def _get(args: argparse.Namespace) -> int:
    reply = await call(args, Stub, "GetAgent", pb.GetAgentRequest(agent_id=args.agent_id), f"agent {args.agent_id}")
    output.emit(reply.agent, AGENT_COLUMNS, args.output)
    return 0


async def _delete(args: argparse.Namespace) -> int:
    request = pb.DeleteAgentRequest(agent_id=args.agent_id)
    await call(args, Stub, "DeleteAgent", request, f"delete agent {args.agent_id}")
    print(f"deleted agent {args.agent_id}", file=sys.stderr, flush=True)
    return 0
