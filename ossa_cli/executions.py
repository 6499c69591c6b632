"""`ossa executions list|get|cancel|tasks`: executions from the terminal.

ossa executions list [--workflow NAME[@VERSION]|ID] [--status running] [--limit N]
ossa executions get ID
ossa executions cancel ID
ossa executions tasks ID
"""

from __future__ import annotations

import argparse
from typing import Any

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa.orchestrator.v1 import orchestrator_pb2_grpc
from ossa_cli import output, workflow
from ossa_cli.commands import call, sync
from ossa_cli.output import field
from ossa_cli.remote import Remote, add_connection_arguments

EXECUTION_COLUMNS: list[output.Column] = [
    ("id", field("id")),
    ("workflow_id", field("workflow_id")),
    ("status", field("status")),
    ("started_at", field("started_at")),
    ("completed_at", field("completed_at")),
    ("error", field("error")),
]
TASK_COLUMNS: list[output.Column] = [
    ("id", field("id")),
    ("step", field("name")),
    ("status", field("status")),
    ("attempt", field("attempt", "0")),
    ("agent_id", field("agent_id")),
    ("capability", field("capability")),
    ("error", field("error")),
]
Stub = orchestrator_pb2_grpc.OrchestratorServiceStub
STATUSES = ("pending", "running", "completed", "failed", "cancelled")


def add_executions_commands(sub: Any) -> None:
    """Add `ossa executions ...` to the `ossa` parser's subcommands."""
    executions = sub.add_parser("executions", help="list, show and cancel executions", description=__doc__)
    commands = executions.add_subparsers(title="commands", metavar="COMMAND", required=True)
    listing = commands.add_parser("list", help="list executions, newest first")
    listing.add_argument("--workflow", default="", metavar="NAME[@VERSION]|ID", help="only runs of this workflow")
    listing.add_argument("--status", choices=STATUSES, help="only this status")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
    add_connection_arguments(listing)
    listing.set_defaults(command=sync(_list))
    for name, helptext, func in (
        ("get", "show one execution (its results when done)", _get),
        ("cancel", "cancel a pending or running execution", _cancel),
        ("tasks", "list an execution's tasks", _tasks),
    ):
        cmd = commands.add_parser(name, help=helptext)
        cmd.add_argument("execution_id", metavar="ID")
        add_connection_arguments(cmd)
        cmd.set_defaults(command=sync(func))


async def _list(args: argparse.Namespace) -> int:
    workflow_id = ""
    if args.workflow:
        async with Remote.from_args(args).channel() as channel:
            workflow_id = (await workflow.find(Stub(channel), args.workflow)).id
    request = pb.ListExecutionsRequest(workflow_id=workflow_id, status=args.status or None, limit=args.limit)
    reply = await call(args, Stub, "ListExecutions", request, "list executions")
    output.emit(list(reply.executions), EXECUTION_COLUMNS, args.output)
    return 0


async def _get(args: argparse.Namespace) -> int:
    request = pb.GetExecutionRequest(execution_id=args.execution_id)
    reply = await call(args, Stub, "GetExecution", request, f"execution {args.execution_id}")
    output.emit(reply.execution, EXECUTION_COLUMNS, args.output)
    return 0


async def _cancel(args: argparse.Namespace) -> int:
    request = pb.CancelExecutionRequest(execution_id=args.execution_id)
    reply = await call(args, Stub, "CancelExecution", request, f"cancel {args.execution_id}")
    output.emit(reply.execution, EXECUTION_COLUMNS, args.output)
    return 0


async def _tasks(args: argparse.Namespace) -> int:
    request = pb.ListExecutionTasksRequest(execution_id=args.execution_id)
    reply = await call(args, Stub, "ListExecutionTasks", request, f"tasks of {args.execution_id}")
    output.emit(list(reply.tasks), TASK_COLUMNS, args.output)
    return 0
