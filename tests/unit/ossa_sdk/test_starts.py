"""Client.start through the StartBatcher against a fake orchestrator (a real gRPC server on loopback):
concurrent starts share StartExecutions calls, and every caller gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa.orchestrator.v1 import orchestrator_pb2_grpc
from ossa_sdk import Client
from ossa_sdk.starts import StartBatcher

Context = grpc.aio.ServicerContext[Any, Any]


def verdict(request: pb.StartExecutionRequest) -> tuple[grpc.StatusCode, str] | None:
    if request.workflow_id == "missing":
        return grpc.StatusCode.NOT_FOUND, "workflow missing not found"
    if request.workflow_id == "down":
        return grpc.StatusCode.UNAVAILABLE, "database unreachable"
    return None


class Fake(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    """Each run's id is "run-<idempotency key>"; every call takes 30 ms. StartExecutions is all or none."""

    def __init__(self) -> None:
        self.calls: list[int] = []  # 0: a StartExecution, n: a StartExecutions of n

    async def StartExecution(self, request: pb.StartExecutionRequest, context: Context) -> pb.StartExecutionResponse:
        self.calls.append(0)
        await asyncio.sleep(0.03)
        if (refused := verdict(request)) is not None:
            await context.abort(*refused)
        return pb.StartExecutionResponse(execution_id=f"run-{request.idempotency_key}")

    async def StartExecutions(self, request: pb.StartExecutionsRequest, context: Context) -> pb.StartExecutionsResponse:
        self.calls.append(len(request.executions))
        await asyncio.sleep(0.03)
        for i, one in enumerate(request.executions):
            if (refused := verdict(one)) is not None:
                await context.abort(refused[0], f"executions[{i}]: {refused[1]}")
        runs = [pb.StartExecutionResponse(execution_id=f"run-{one.idempotency_key}") for one in request.executions]
        return pb.StartExecutionsResponse(executions=runs)


class Old(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    """A server from before StartExecutions (UNIMPLEMENTED)."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    async def StartExecution(self, request: pb.StartExecutionRequest, context: Context) -> pb.StartExecutionResponse:
        self.calls.append(0)
        await asyncio.sleep(0.03)
        return pb.StartExecutionResponse(execution_id=f"run-{request.idempotency_key}")


async def serve(servicer: Any) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
async def fake() -> AsyncIterator[tuple[Fake, str]]:
    servicer = Fake()
    server, target = await serve(servicer)
    yield servicer, target
    await server.stop(None)


async def starts(client: Client, keys: list[str], workflow: dict[str, str] | None = None) -> list[Any]:
    workflow = workflow or {}
    return await asyncio.gather(
        *(client.start(workflow.get(k, "wf"), idempotency_key=k) for k in keys), return_exceptions=True
    )


async def test_a_lone_start_is_one_plain_start_execution(fake: tuple[Fake, str]) -> None:
    servicer, target = fake
    async with Client(orchestrator=target, token="") as client:
        assert await client.start("wf", idempotency_key="a") == "run-a"
    assert servicer.calls == [0]


async def test_concurrent_starts_share_calls_and_each_caller_gets_its_own_run(fake: tuple[Fake, str]) -> None:
    servicer, target = fake
    keys = [f"k{i}" for i in range(20)]
    async with Client(orchestrator=target, token="") as client:
        assert await starts(client, keys) == [f"run-{k}" for k in keys]
    # The first went at once, alone; the other 19 waited for it and went together.
    assert servicer.calls == [0, 19]


async def test_an_item_the_server_refuses_fails_only_its_own_caller(fake: tuple[Fake, str]) -> None:
    servicer, target = fake
    keys = [f"k{i}" for i in range(8)]
    async with Client(orchestrator=target, token="") as client:
        answers = await starts(client, keys, {"k5": "missing"})
    assert [a for i, a in enumerate(answers) if i != 5] == [f"run-{k}" for k in keys if k != "k5"]
    assert isinstance(answers[5], grpc.aio.AioRpcError) and answers[5].code() == grpc.StatusCode.NOT_FOUND
    assert "executions[" not in (answers[5].details() or "")  # its own lone call's answer
    # The batch of 7 was refused whole (nothing started), then each of its starts went alone.
    assert servicer.calls == [0, 7] + [0] * 7


async def test_an_unavailable_server_fails_every_start_of_the_batch(fake: tuple[Fake, str]) -> None:
    servicer, target = fake
    keys = [f"k{i}" for i in range(6)]
    async with Client(orchestrator=target, token="") as client:
        answers = await starts(client, keys, {"k4": "down"})
    assert answers[0] == "run-k0"
    assert all(isinstance(a, grpc.aio.AioRpcError) and a.code() == grpc.StatusCode.UNAVAILABLE for a in answers[1:])
    assert servicer.calls == [0, 5]  # not retried: whether they started is unknown, as for a lone start


async def test_a_server_without_start_executions_gets_lone_starts() -> None:
    servicer = Old()
    server, target = await serve(servicer)
    try:
        async with Client(orchestrator=target, token="") as client:
            keys = [f"k{i}" for i in range(6)]
            assert await starts(client, keys) == [f"run-{k}" for k in keys]
            assert await starts(client, ["x", "y", "z"]) == ["run-x", "run-y", "run-z"]
    finally:
        await server.stop(None)
    assert servicer.calls == [0] * 9


async def test_a_start_cancelled_while_queued_is_never_sent(fake: tuple[Fake, str]) -> None:
    servicer, target = fake
    async with Client(orchestrator=target, token="") as client:
        first = [asyncio.create_task(client.start("wf", idempotency_key=k)) for k in ("a", "b")]
        queued = asyncio.create_task(client.start("wf", idempotency_key="gone"))
        await asyncio.sleep(0)
        queued.cancel()
        assert await asyncio.gather(*first) == ["run-a", "run-b"]
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert await client.start("wf", idempotency_key="c") == "run-c"
    assert servicer.calls == [0, 0, 0]


async def test_without_batching_every_start_is_its_own_call(fake: tuple[Fake, str]) -> None:
    servicer, target = fake
    async with Client(orchestrator=target, token="", batch_starts=False) as client:
        keys = [f"k{i}" for i in range(5)]
        assert await starts(client, keys) == [f"run-{k}" for k in keys]
    assert servicer.calls == [0] * 5


async def loops(batcher: StartBatcher, workers: int, each: int) -> list[str]:
    """`workers` callers, each starting `each` runs one after another (a producer's loop)."""

    async def worker(w: int) -> list[str]:
        out = []
        for i in range(each):
            reply = await batcher.start(pb.StartExecutionRequest(workflow_id="wf", idempotency_key=f"w{w}-{i}"))
            out.append(reply.execution_id)
        return out

    return [run for runs in await asyncio.gather(*(worker(w) for w in range(workers))) for run in runs]


async def test_callers_that_start_again_go_together(fake: tuple[Fake, str]) -> None:
    servicer, target = fake
    async with grpc.aio.insecure_channel(target) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]
        batcher = StartBatcher(stub.StartExecution, stub.StartExecutions, linger=0.5)
        runs = await loops(batcher, workers=8, each=4)
    assert sorted(runs) == sorted(f"run-w{w}-{i}" for w in range(8) for i in range(4))
    # The first start went alone; the other 7 waited for it, and its caller's next start joined them.
    # From then on all 8 callers' next starts go together (the last call has the 7 left), not the
    # first caller back alone and the other 7 a round trip later.
    assert servicer.calls == [0, 8, 8, 8, 7]


async def test_without_the_wait_the_first_caller_back_goes_alone(fake: tuple[Fake, str]) -> None:
    servicer, target = fake
    async with grpc.aio.insecure_channel(target) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]
        batcher = StartBatcher(stub.StartExecution, stub.StartExecutions, linger=0)
        await loops(batcher, workers=8, each=4)
    assert servicer.calls[:4] == [0, 8, 0, 8]


async def test_a_lone_caller_never_waits_for_company(fake: tuple[Fake, str]) -> None:
    servicer, target = fake
    async with grpc.aio.insecure_channel(target) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]
        batcher = StartBatcher(stub.StartExecution, stub.StartExecutions, linger=1.0)
        # One caller, one start after another: each call carries one start, so no call waits for
        # company. Three 30 ms calls; waits of the 1 s linger before the second and third would
        # take over 2 s and time out.
        await asyncio.wait_for(loops(batcher, workers=1, each=3), 1.5)
    assert servicer.calls == [0, 0, 0]


async def test_the_wait_ends_after_linger_when_fewer_come_back(fake: tuple[Fake, str]) -> None:
    servicer, target = fake
    async with grpc.aio.insecure_channel(target) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]
        batcher = StartBatcher(stub.StartExecution, stub.StartExecutions, linger=0.2)
        await asyncio.gather(*(batcher.start(pb.StartExecutionRequest(workflow_id="wf", idempotency_key=k))
                               for k in ("a", "b", "c")))  # fmt: skip
        assert servicer.calls == [0, 2]  # a alone, b and c together: now the next call waits for 2
        began = asyncio.get_running_loop().time()
        reply = await batcher.start(pb.StartExecutionRequest(workflow_id="wf", idempotency_key="d"))
        waited = asyncio.get_running_loop().time() - began
    assert reply.execution_id == "run-d" and servicer.calls == [0, 2, 0]
    assert waited >= 0.2


def test_limits_are_checked() -> None:
    async def never(request: Any) -> Any:
        raise AssertionError

    with pytest.raises(ValueError, match="max_batch"):
        StartBatcher(never, never, max_batch=1001)
    with pytest.raises(ValueError, match="max_in_flight"):
        StartBatcher(never, never, max_in_flight=0)
    with pytest.raises(ValueError, match="linger"):
        StartBatcher(never, never, linger=-0.001)
