"""The null orchestrator (bench_dispatch_ceiling.py's stand-in) speaks the Work protocol the agents
expect, over a real grpc.aio server on loopback: starts become assignments on streams with free
slots, completions are answered by receipts and free the slot, and completed executions are listed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from benchmarks.null_orchestrator import NullOrchestrator
from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa.orchestrator.v1 import orchestrator_pb2_grpc

pytestmark = pytest.mark.integration


@pytest.fixture
async def stub() -> AsyncIterator[Any]:
    server = grpc.aio.server()
    orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(NullOrchestrator(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
    await server.stop(None)


async def _batch(call: Any) -> pb.WorkBatch:
    message = await asyncio.wait_for(call.read(), 5)
    assert message.WhichOneof("kind") == "batch"
    batch: pb.WorkBatch = message.batch
    return batch


async def test_starts_wait_for_a_free_slot_and_completions_get_receipts(stub: Any) -> None:
    call = stub.Work()
    await call.write(pb.WorkRequest(agent_id="a", capabilities=["echo"], slots=2, batched=True))
    assert await _batch(call) == pb.WorkBatch()  # the stream carries reports
    started = [await stub.StartExecution(pb.StartExecutionRequest(workflow_id="w"), timeout=5) for _ in range(3)]
    assert {s.status for s in started} == {pb.ExecutionStatus.pending}
    leased: list[pb.Assignment] = []
    while len(leased) < 2:
        leased += (await _batch(call)).assignments
    assert len(leased) == 2 and {a.execution_id for a in leased} <= {s.execution_id for s in started}
    assert all(a.fencing_token == 1 and a.lease_seconds > 0 for a in leased)

    await call.write(pb.WorkRequest(completions=[pb.CompleteTaskRequest(task_id=leased[0].task_id, fencing_token=1)]))
    receipts: list[pb.Receipt] = []
    third: list[pb.Assignment] = []
    while not (receipts and third):
        batch = await _batch(call)
        receipts += batch.receipts
        third += batch.assignments
    assert receipts[0].task_id == leased[0].task_id and receipts[0].kind == pb.RECEIPT_KIND_COMPLETION
    assert third[0].execution_id not in {a.execution_id for a in leased}  # the freed slot took the third

    listed = await stub.ListExecutions(pb.ListExecutionsRequest(status=pb.ExecutionStatus.completed), timeout=5)
    assert [e.id for e in listed.executions] == [leased[0].execution_id]
    later = pb.ListExecutionsRequest(status=pb.ExecutionStatus.completed, offset=1, limit=1)
    assert not (await stub.ListExecutions(later, timeout=5)).executions
    await call.done_writing()


async def test_an_unbatched_stream_is_refused(stub: Any) -> None:
    call = stub.Work()
    await call.write(pb.WorkRequest(agent_id="a", capabilities=["echo"], slots=1))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await asyncio.wait_for(call.read(), 5)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_batch_starts_answer_each_item(stub: Any) -> None:
    request = pb.StartExecutionsRequest(executions=[pb.StartExecutionRequest(workflow_id=f"w{i}") for i in range(3)])
    response = await stub.StartExecutions(request, timeout=5)
    assert [e.workflow_id for e in response.executions] == ["w0", "w1", "w2"]
    assert len({e.execution_id for e in response.executions}) == 3
