"""`ossa workflow apply|list|get|publish|deprecate`: workflows from the terminal.

    ossa workflow apply -f digest.yaml [--publish]   # YAML or JSON: the body of POST /api/v1/workflows
    ossa workflow list [--name N] [--status draft|published|deprecated]
    ossa workflow get NAME[@VERSION] | ID
    ossa workflow publish|deprecate NAME@VERSION | ID

`apply` creates the version as a draft; when that name and version exist already it says so if the
stored one is the same (exit 0), and refuses if it differs (exit 5: a published version is
immutable, give the change a new version).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import grpc
import yaml
from google.protobuf import struct_pb2

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa.orchestrator.v1 import orchestrator_pb2_grpc
from ossa_cli import output
from ossa_cli.commands import sync
from ossa_cli.output import field
from ossa_cli.remote import CONFLICT, NOT_FOUND, USAGE, CommandError, Remote, add_connection_arguments, refused

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
WORKFLOW_COLUMNS: list[output.Column] = [
    ("id", field("id")),
    ("name", field("name")),
    ("version", field("version")),
    ("status", field("status")),
    ("steps", lambda w: len(w.get("definition", {}).get("steps", []))),
    ("created_at", field("created_at")),
]
STATUSES = ("draft", "published", "deprecated")


def add_workflow_commands(sub: Any) -> None:
    """Add `ossa workflow ...` to the `ossa` parser's subcommands."""
    workflow = sub.add_parser("workflow", help="create, list and publish workflows", description=__doc__)
    commands = workflow.add_subparsers(title="commands", metavar="COMMAND", required=True)
    apply = commands.add_parser("apply", help="create a workflow version from a YAML or JSON file")
    apply.add_argument("-f", "--file", required=True, type=Path, help="the workflow: name, version, definition")
    apply.add_argument("--publish", action="store_true", help="publish it too (it can run only when published)")
    add_connection_arguments(apply)
    apply.set_defaults(command=sync(_apply))
    listing = commands.add_parser("list", help="list workflows")
    listing.add_argument("--name", default="", help="only this name")
    listing.add_argument("--status", choices=STATUSES, help="only this status")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
    add_connection_arguments(listing)
    listing.set_defaults(command=sync(_list))
    for name, helptext, func in (
        ("get", "show a workflow (every version of NAME without @VERSION)", _get),
        ("publish", "publish a draft: it can run, and never changes again", _publish),
        ("deprecate", "deprecate a published workflow: no new executions", _deprecate),
    ):
        cmd = commands.add_parser(name, help=helptext)
        cmd.add_argument("workflow", metavar="NAME[@VERSION]|ID")
        add_connection_arguments(cmd)
        cmd.set_defaults(command=sync(func))


def load_file(path: Path) -> dict[str, Any]:
    """The workflow document in `path` (YAML, of which JSON is a subset), checked for its shape."""
    try:
        text = path.read_text()
    except OSError as err:
        raise CommandError(f"-f {path}: {err.strerror or err}", USAGE) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise CommandError(f"-f {path}: not YAML or JSON: {err}", USAGE) from None
    if not isinstance(doc, dict):
        raise CommandError(f"-f {path}: expected an object with name, version and definition", USAGE)
    unknown = sorted(set(doc) - {"name", "version", "description", "definition"})
    if unknown:
        raise CommandError(f"-f {path}: unknown field {unknown[0]!r} (name, version, description, definition)", USAGE)
    for key in ("name", "version"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise CommandError(f"-f {path}: {key}: is required (a string)", USAGE)
    if not isinstance(doc.get("definition"), dict):
        raise CommandError(f"-f {path}: definition: is required (an object with steps)", USAGE)
    # JSON round trip: YAML dates and the like become strings, as they would over REST.
    loaded: dict[str, Any] = json.loads(json.dumps(doc, default=str))
    return loaded


def version_key(version: str) -> tuple[int, ...]:
    """Semantic-version order for `1.10.0` > `1.9.0` (pre-release suffixes ignored)."""
    core = version.split("-", 1)[0].split("+", 1)[0]
    return tuple(int(p) if p.isdigit() else 0 for p in core.split("."))


async def find(stub: Any, ref: str, *, published: bool = False) -> pb.Workflow:
    """The workflow `ref` names: an id, NAME@VERSION, or NAME (its newest version; the newest
    published one when `published`)."""
    if UUID.match(ref):
        try:
            reply = await stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=ref))
        except grpc.aio.AioRpcError as err:
            raise refused(err, f"workflow {ref}") from None
        found: pb.Workflow = reply.workflow
        return found
    name, _, version = ref.partition("@")
    status = "published" if published and not version else None
    try:
        reply = await stub.ListWorkflows(pb.ListWorkflowsRequest(name=name, status=status, limit=1000))
    except grpc.aio.AioRpcError as err:
        raise refused(err, f"workflow {ref}") from None
    matches = [w for w in reply.workflows if not version or w.version == version]
    if not matches:
        which = "no published version of" if status else "no workflow"
        raise CommandError(f"{which} {ref!r}", NOT_FOUND)
    newest: pb.Workflow = max(matches, key=lambda w: version_key(w.version))
    return newest


def _same(stored: pb.Workflow, doc: dict[str, Any]) -> bool:
    definition = output.as_json(stored).get("definition", {})
    return bool(definition == doc["definition"] and stored.description == doc.get("description", ""))


async def _apply(args: argparse.Namespace) -> int:
    doc = load_file(args.file)
    remote = Remote.from_args(args)
    definition = struct_pb2.Struct()
    definition.update(doc["definition"])
    request = pb.CreateWorkflowRequest(
        name=doc["name"], version=doc["version"], description=doc.get("description", ""), definition=definition
    )
    label = f"{doc['name']}@{doc['version']}"
    async with remote.channel() as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        try:
            workflow = (await stub.CreateWorkflow(request)).workflow
            note = f"created workflow {label} ({workflow.id}) as a draft"
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise refused(err, f"apply {label}") from None
            workflow = await find(stub, label)
            if not _same(workflow, doc):
                raise CommandError(
                    f"apply {label}: 409 ALREADY_EXISTS: that version exists with another definition "
                    f"({workflow.id}, {pb.WorkflowStatus.Value.Name(workflow.status)}); give the change a new version",
                    CONFLICT,
                ) from None
            note = f"workflow {label} ({workflow.id}) exists already, unchanged"
        if args.publish and workflow.status == pb.WorkflowStatus.draft:
            try:
                workflow = (await stub.PublishWorkflow(pb.PublishWorkflowRequest(workflow_id=workflow.id))).workflow
            except grpc.aio.AioRpcError as err:
                raise refused(err, f"publish {label}") from None
            note += "; published"
    print(note, file=sys.stderr, flush=True)
    output.emit(workflow, WORKFLOW_COLUMNS, args.output)
    return 0


async def _list(args: argparse.Namespace) -> int:
    remote = Remote.from_args(args)
    async with remote.channel() as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        try:
            reply = await stub.ListWorkflows(
                pb.ListWorkflowsRequest(name=args.name, status=args.status or None, limit=args.limit)
            )
        except grpc.aio.AioRpcError as err:
            raise refused(err, "list workflows") from None
    output.emit(list(reply.workflows), WORKFLOW_COLUMNS, args.output)
    return 0


async def _get(args: argparse.Namespace) -> int:
    remote = Remote.from_args(args)
    async with remote.channel() as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        if UUID.match(args.workflow) or "@" in args.workflow:
            output.emit(await find(stub, args.workflow), WORKFLOW_COLUMNS, args.output)
            return 0
        try:
            reply = await stub.ListWorkflows(pb.ListWorkflowsRequest(name=args.workflow, limit=1000))
        except grpc.aio.AioRpcError as err:
            raise refused(err, f"workflow {args.workflow}") from None
    if not reply.workflows:
        raise CommandError(f"no workflow {args.workflow!r}", NOT_FOUND)
    versions: list[pb.Workflow] = sorted(reply.workflows, key=lambda w: version_key(w.version))
    output.emit(versions, WORKFLOW_COLUMNS, args.output)
    return 0


async def _transition(args: argparse.Namespace, verb: str) -> int:
    remote = Remote.from_args(args)
    async with remote.channel() as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        workflow = await find(stub, args.workflow)
        try:
            if verb == "publish":
                reply: Any = await stub.PublishWorkflow(pb.PublishWorkflowRequest(workflow_id=workflow.id))
            else:
                reply = await stub.DeprecateWorkflow(pb.DeprecateWorkflowRequest(workflow_id=workflow.id))
        except grpc.aio.AioRpcError as err:
            raise refused(err, f"{verb} {args.workflow}") from None
    output.emit(reply.workflow, WORKFLOW_COLUMNS, args.output)
    return 0


async def _publish(args: argparse.Namespace) -> int:
    return await _transition(args, "publish")


async def _deprecate(args: argparse.Namespace) -> int:
    return await _transition(args, "deprecate")
