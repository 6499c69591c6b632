"""`ossa agent serve`: arguments, the gateway default, one-line errors, and a real run in a subprocess.

The subprocess talks to one loopback gRPC server with in-memory fakes of the registry and the
orchestrator (as Envoy would route both on the gateway port).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa.orchestrator.v1 import orchestrator_pb2_grpc
from ossa.registry.v1 import registry_pb2 as reg
from ossa.registry.v1 import registry_pb2_grpc
from ossa_cli.agent import cmd_agent_serve, default_gateway
from ossa_cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[3]
Context = grpc.aio.ServicerContext[Any, Any]


def serve_args(*extra: str) -> list[str]:
    return ["agent", "serve", "--name", "a-1", "--capability", "summarize", *extra]


def test_serve_arguments() -> None:
    args = build_parser().parse_args(serve_args("--capability", "review", "--handler", "sleep", "--slots", "4"))
    assert args.command is cmd_agent_serve
    assert (args.name, args.capabilities, args.handler, args.slots) == ("a-1", ["summarize", "review"], "sleep", 4)
    assert (args.type, args.version, args.gateway, args.grace) == ("worker", "1.0.0", None, 30.0)
    args = build_parser().parse_args(
        serve_args("--handler", "pkg.mod:fn", "--type", "critic", "--version", "2.1.0", "--gateway", "h:1")
    )
    assert (args.handler, args.type, args.version, args.gateway) == ("pkg.mod:fn", "critic", "2.1.0", "h:1")


@pytest.mark.parametrize(
    "argv",
    [
        ["agent", "serve", "--name", "a", "--handler", "echo"],  # no capability
        serve_args(),  # no handler
        serve_args("--handler", "echo", "--slots", "0"),
        serve_args("--handler", "echo", "--slots", "1001"),
        serve_args("--handler", "echo", "--type", "robot"),
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    capsys.readouterr()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "127.0.0.1:3100"),
        ({"OSSA_GATEWAY_PORT": "4100"}, "127.0.0.1:4100"),
        ({"OSSA_GATEWAY_HOST": "10.1.2.3", "OSSA_GATEWAY_PORT": "4100"}, "10.1.2.3:4100"),
        ({"OSSA_GATEWAY_HOST": "::"}, "127.0.0.1:3100"),
        ({"OSSA_GATEWAY_HOST": "::1"}, "[::1]:3100"),
    ],
)
def test_gateway_default_from_settings(env: dict[str, str], expected: str) -> None:
    assert default_gateway(env) == expected


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("no_such_module_xyz:run", "cannot import module 'no_such_module_xyz'"),
        ("echoo", "neither a built-in"),
        ("json:nope", "has no attribute"),
    ],
)
def test_a_handler_that_cannot_be_imported_is_one_line_exit_2(
    handler: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(serve_args("--handler", handler)) == 2
    err = capsys.readouterr().err
    assert err.startswith("ossa: error: ") and message in err and err.count("\n") == 1


def test_bad_settings_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OSSA_GATEWAY_PORT", "http")
    assert main(serve_args("--handler", "echo")) == 2
    assert "OSSA_GATEWAY_PORT" in capsys.readouterr().err


# A real `ossa agent serve` process ---------------------------------------------------------------------


class FakePlatform(registry_pb2_grpc.AgentRegistryServiceServicer, orchestrator_pb2_grpc.OrchestratorServiceServicer):
    def __init__(self) -> None:
        self.created: list[reg.CreateAgentRequest] = []
        self.beats: list[reg.HeartbeatRequest] = []
        self.work: list[pb.WorkRequest] = []
        self.outbox: asyncio.Queue[pb.WorkResponse] = asyncio.Queue()
        self.completed: dict[str, dict[str, Any]] = {}
        self.bearers: dict[str, set[str]] = {}  # RPC → the authorization metadata it carried

    def saw(self, rpc: str, context: Context) -> None:
        found = {v for k, v in context.invocation_metadata() or () if k == "authorization" and isinstance(v, str)}
        self.bearers.setdefault(rpc, set()).update(found or {""})

    async def CreateAgent(self, request: reg.CreateAgentRequest, context: Context) -> reg.CreateAgentResponse:
        self.saw("CreateAgent", context)
        self.created.append(request)
        return reg.CreateAgentResponse(agent=reg.Agent(id="agent-1", name=request.name))

    async def Heartbeat(self, request_iterator: Any, context: Context) -> AsyncIterator[reg.HeartbeatResponse]:
        self.saw("Heartbeat", context)
        async for beat in request_iterator:
            self.beats.append(beat)
            yield reg.HeartbeatResponse(agent_id=beat.agent_id, interval_seconds=1)

    async def Work(self, request_iterator: Any, context: Context) -> AsyncIterator[pb.WorkResponse]:
        self.saw("Work", context)
        self.work.append(await anext(aiter(request_iterator)))
        while True:
            yield await self.outbox.get()

    async def RenewLease(self, request: pb.RenewLeaseRequest, context: Context) -> pb.RenewLeaseResponse:
        return pb.RenewLeaseResponse()

    async def CompleteTask(self, request: pb.CompleteTaskRequest, context: Context) -> pb.CompleteTaskResponse:
        self.saw("CompleteTask", context)
        self.completed[request.task_id] = json_format.MessageToDict(request.output)
        return pb.CompleteTaskResponse()


async def until(check: Any, proc: asyncio.subprocess.Process, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.returncode is None, "ossa agent serve exited early"
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_serve_runs_an_imported_handler_and_stops_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "sdk_cli_handlers.py").write_text(
        "def shout(task_input):\n    return {'text': task_input['params']['text'].upper()}\n"
    )
    fake = FakePlatform()
    server = grpc.aio.server()
    registry_pb2_grpc.add_AgentRegistryServiceServicer_to_server(fake, server)
    orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSSA_")}
    env["PYTHONPATH"] = str(ROOT)
    argv = ["agent", "serve", "--name", "cli-1", "--capability", "shout", "--handler", "sdk_cli_handlers:shout"]
    argv += ["--token", "tok-123"]  # sent as `authorization: Bearer tok-123` on every call
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ossa_cli.main",
        *argv,
        "--slots",
        "2",
        "--gateway",
        f"127.0.0.1:{port}",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await until(lambda: fake.work, proc)
        assert (fake.created[0].name, list(fake.created[0].capabilities)) == ("cli-1", ["shout"])
        assert (fake.work[0].agent_id, fake.work[0].slots) == ("agent-1", 2)
        assignment = pb.Assignment(task_id="t-1", fencing_token=1, lease_seconds=30)
        assignment.input.update({"params": {"text": "hi"}})
        fake.outbox.put_nowait(pb.WorkResponse(assignment=assignment))
        await until(lambda: fake.completed and fake.beats, proc)
        assert fake.completed == {"t-1": {"text": "HI"}}
        assert fake.bearers == {rpc: {"Bearer tok-123"} for rpc in ("CreateAgent", "Heartbeat", "Work", "CompleteTask")}
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        assert proc.stderr is not None
        log = (await proc.stderr.read()).decode()
        assert "agent cli-1 stopped" in log
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await server.stop(grace=None)
