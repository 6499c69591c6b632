"""`ossa run`: start an execution of a published workflow, and with --wait follow it to its end.

    ossa run NAME[@VERSION]|ID [--context KEY=VALUE ...] [--context-file f.json] [--priority N]
             [--idempotency-key K] [--wait]

NAME alone runs its newest published version. A --context value that parses as JSON is JSON
(`n=3`, `ok=true`, `tags=["a","b"]`), anything else is a string; --context wins over --context-file.

Without --wait it prints the execution id (with `-o json`, the accepted execution) and exits 0.
With --wait it prints the id and then the progress on stderr (one line per step event, a bar on a
terminal), following the execution through WatchExecution (no polling): exit 0 and the results as
JSON on stdout when it completes; exit 1 with the error when it fails or is cancelled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa.orchestrator.v1 import orchestrator_pb2_grpc
from ossa.registry.v1 import registry_pb2, registry_pb2_grpc
from ossa_cli import output, workflow
from ossa_cli.commands import sync
from ossa_cli.progress import Progress
from ossa_cli.remote import FAILED, OK, UNREACHABLE, USAGE, CommandError, Remote, add_connection_arguments, refused

FINAL = {pb.ExecutionStatus.completed, pb.ExecutionStatus.failed, pb.ExecutionStatus.cancelled}
WATCH_RETRIES = 5  # a watch cut by a restart is opened again (it starts with the whole state)


def add_run_command(sub: Any) -> None:
    """Add `ossa run` to the `ossa` parser's subcommands."""
    run = sub.add_parser("run", help="start an execution (and follow it with --wait)", description=__doc__)
    run.add_argument("workflow", metavar="NAME[@VERSION]|ID")
    run.add_argument("--context", action="append", default=[], metavar="KEY=VALUE", help="context entry (repeat)")
    run.add_argument("--context-file", type=Path, metavar="FILE", help="a JSON object to start the context from")
    run.add_argument("--priority", type=int, default=0, help="1-10 (10 most urgent); overrides the steps'")
    run.add_argument(
        "--idempotency-key", default="", metavar="K", help="a retried run with this key starts nothing new"
    )
    run.add_argument("--wait", action="store_true", help="follow the execution to its end (exit 1 if it fails)")
    add_connection_arguments(run)
    run.set_defaults(command=sync(_run))


def parse_context(entries: list[str], context_file: Path | None) -> dict[str, Any]:
    """The context object from --context-file and --context KEY=VALUE entries (which win)."""
    context: dict[str, Any] = {}
    if context_file is not None:
        try:
            loaded = json.loads(context_file.read_text())
        except OSError as err:
            raise CommandError(f"--context-file {context_file}: {err.strerror or err}", USAGE) from None
        except json.JSONDecodeError as err:
            raise CommandError(f"--context-file {context_file}: not JSON: {err}", USAGE) from None
        if not isinstance(loaded, dict):
            raise CommandError(f"--context-file {context_file}: expected a JSON object", USAGE)
        context.update(loaded)
    for entry in entries:
        key, sep, raw = entry.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--context {entry!r}: expected KEY=VALUE", USAGE)
        try:
            context[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            context[key.strip()] = raw
    return context


async def _request(stub: Any, args: argparse.Namespace) -> pb.StartExecutionRequest:
    context = struct_pb2.Struct()
    context.update(parse_context(args.context, args.context_file))
    request = pb.StartExecutionRequest(context=context, priority=args.priority, idempotency_key=args.idempotency_key)
    ref: str = args.workflow
    if workflow.UUID.match(ref):
        request.workflow_id = ref
    elif "@" in ref:
        request.workflow_name, _, request.workflow_version = ref.partition("@")
    else:
        request.workflow_id = (await workflow.find(stub, ref, published=True)).id
    return request


async def _run(args: argparse.Namespace) -> int:
    remote = Remote.from_args(args)
    async with remote.channel() as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        request = await _request(stub, args)
        try:
            started = await stub.StartExecution(request)
        except grpc.aio.AioRpcError as err:
            raise refused(err, f"run {args.workflow}") from None
        if not args.wait:
            if output.choose(args.output) == "json":
                output.emit(started, [], "json")
            else:
                print(started.execution_id, flush=True)
            return OK
        print(f"execution {started.execution_id}", file=sys.stderr, flush=True)
        return await follow(channel, stub, started)


async def follow(channel: grpc.aio.Channel, stub: Any, started: pb.StartExecutionResponse) -> int:
    """Watch the execution to its end, printing progress; its exit code."""
    steps = await _step_count(stub, started.workflow_id)
    names = _AgentNames(registry_pb2_grpc.AgentRegistryServiceStub(channel))
    progress = Progress(steps=steps, name_of=names.get)
    execution = None
    for attempt in range(WATCH_RETRIES + 1):
        try:
            async for message in stub.WatchExecution(pb.WatchExecutionRequest(execution_id=started.execution_id)):
                await names.learn(message.tasks)
                progress.update(message)
                execution = message.execution
            break
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE or attempt == WATCH_RETRIES:
                progress.finish()
                raise refused(err, f"watch {started.execution_id}") from None
            await asyncio.sleep(min(0.2 * 2**attempt, 3.0))
    progress.finish()
    if execution is None or execution.status not in FINAL:
        raise CommandError(f"watch {started.execution_id}: the stream ended before the execution did", UNREACHABLE)
    status = pb.ExecutionStatus.Value.Name(execution.status)
    if execution.status == pb.ExecutionStatus.completed:
        print(json.dumps(output.as_json(execution).get("results", {}), indent=2), flush=True)
        return OK
    reason = f": {execution.error}" if execution.error else ""
    print(f"ossa: error: execution {execution.id} {status}{reason}", file=sys.stderr, flush=True)
    return FAILED


async def _step_count(stub: Any, workflow_id: str) -> int:
    try:
        reply = await stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=workflow_id))
    except grpc.aio.AioRpcError:
        return 0  # the bar then counts the tasks seen so far
    steps = output.as_json(reply.workflow).get("definition", {}).get("steps", [])
    return len(steps) if isinstance(steps, list) else 0


class _AgentNames:
    """Agent id → name, looked up once per agent (a token that may not read agents gets ids only)."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.names: dict[str, str] = {}

    def get(self, agent_id: str) -> str:
        return self.names.get(agent_id, "")

    async def learn(self, tasks: Any) -> None:
        for task in tasks:
            if task.agent_id and task.agent_id not in self.names:
                try:
                    reply = await self.registry.GetAgent(registry_pb2.GetAgentRequest(agent_id=task.agent_id))
                    self.names[task.agent_id] = reply.agent.name
                except grpc.aio.AioRpcError:
                    self.names[task.agent_id] = ""
