"""Client.wait against a fake orchestrator (a real gRPC server on loopback): a broken watch
stream is opened again, and errors other than unavailability reach the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa.orchestrator.v1 import orchestrator_pb2_grpc
from ossa_sdk import Backoff, Client

Context = grpc.aio.ServicerContext[Any, Any]
EXECUTION = "00000000-0000-4000-8000-000000000001"


def message(status: str, *, initial: bool) -> pb.WatchExecutionResponse:
    execution = pb.Execution(id=EXECUTION, status=pb.ExecutionStatus.Value.Value(status))  # type: ignore[arg-type]
    return pb.WatchExecutionResponse(execution=execution, initial=initial)


class Flaky(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    """The first watch breaks after its first message; the second one sees the execution end."""

    def __init__(self) -> None:
        self.calls = 0

    async def WatchExecution(
        self, request: pb.WatchExecutionRequest, context: Context
    ) -> AsyncIterator[pb.WatchExecutionResponse]:
        self.calls += 1
        if request.execution_id != EXECUTION:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"execution {request.execution_id} not found")
        if self.calls == 1:
            yield message("running", initial=True)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "orchestrator restarting")
        yield message("running", initial=True)
        yield message("completed", initial=False)


@pytest.fixture
async def served() -> AsyncIterator[tuple[Flaky, str]]:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    fake = Flaky()
    orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(fake, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield fake, f"127.0.0.1:{port}"
    await server.stop(None)


async def test_a_broken_stream_is_watched_again(served: tuple[Flaky, str]) -> None:
    fake, target = served
    seen: list[tuple[str, bool]] = []
    async with Client(orchestrator=target, token="", backoff=lambda: Backoff(0.01, 0.05)) as client:
        execution = await client.wait(
            EXECUTION, on_change=lambda c: seen.append((c["execution"]["status"], c["initial"]))
        )
    assert execution["status"] == "completed" and fake.calls == 2
    assert seen == [("running", True), ("running", True), ("completed", False)]


async def test_not_found_is_raised(served: tuple[Flaky, str]) -> None:
    _, target = served
    async with Client(orchestrator=target, token="") as client:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.wait("00000000-0000-4000-8000-000000000002")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
