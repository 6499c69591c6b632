"""The Work stream's outbox: reports written coalesced by one writer, matched back by their receipts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import struct_pb2

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_sdk.receipts import (
    COMPLETION,
    FAILURE,
    MAX_WRITE_BYTES,
    MAX_WRITE_REPORTS,
    RENEWAL,
    Outbox,
    StreamClosed,
    describe,
    status,
    unary,
)
from tests.unit.ossa_sdk.fakes import FakeStub, eventually, receipts_for, reports


class Wire:
    """The outbox's write: records each WorkRequest; `hold` keeps the next write in flight."""

    def __init__(self) -> None:
        self.written: list[pb.WorkRequest] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.error: BaseException | None = None

    async def write(self, request: pb.WorkRequest) -> None:
        if self.error is not None:
            raise self.error
        self.written.append(request)
        await self.hold.wait()


@pytest.fixture
async def wire() -> Wire:
    return Wire()


@pytest.fixture
async def outbox(wire: Wire) -> AsyncIterator[Outbox]:
    box = Outbox(wire.write)
    writer = asyncio.create_task(box.run())
    yield box
    box.close()
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)


def completion(task_id: str, token: int = 1, **output: str) -> pb.CompleteTaskRequest:
    struct = struct_pb2.Struct()
    struct.update(output)
    return pb.CompleteTaskRequest(task_id=task_id, fencing_token=token, output=struct)


def renewal(task_id: str, token: int = 1) -> pb.RenewLeaseRequest:
    return pb.RenewLeaseRequest(task_id=task_id, fencing_token=token)


def failure(task_id: str, token: int = 1) -> pb.FailTaskRequest:
    return pb.FailTaskRequest(task_id=task_id, fencing_token=token, error="boom", retryable=True)


async def test_reports_queued_together_go_in_one_write(outbox: Outbox, wire: Wire) -> None:
    futures = [outbox.put(COMPLETION, completion(f"t{n}", n=str(n))) for n in range(16)]
    futures.append(outbox.put(FAILURE, failure("f")))
    futures.append(outbox.put(RENEWAL, renewal("r")))
    await eventually(lambda: wire.written, "a write")
    await asyncio.sleep(0.01)
    (request,) = wire.written
    assert [c.task_id for c in request.completions] == [f"t{n}" for n in range(16)]
    assert [f.task_id for f in request.failures] == ["f"] and [r.task_id for r in request.renewals] == ["r"]
    assert not request.agent_id and not request.slots and not request.batched
    assert (outbox.writes, outbox.sent) == (1, 18)
    assert not any(f.done() for f in futures)  # until their receipts come


async def test_reports_queued_during_a_write_go_in_the_next_one(outbox: Outbox, wire: Wire) -> None:
    wire.hold.clear()
    outbox.put(COMPLETION, completion("a"))
    await eventually(lambda: wire.written, "the first write")
    outbox.put(COMPLETION, completion("b"))
    outbox.put(RENEWAL, renewal("c"))
    await asyncio.sleep(0.01)
    assert len(wire.written) == 1  # one writer: nothing else is written while a write is in flight
    wire.hold.set()
    await eventually(lambda: len(wire.written) == 2, "the second write")
    assert [reports(r) for r in wire.written] == [[completion("a")], [completion("b"), renewal("c")]]


async def test_receipts_resolve_by_kind_task_and_token(outbox: Outbox, wire: Wire) -> None:
    done = outbox.put(COMPLETION, completion("t", 7))
    running = pb.ExecutionStatus.running
    renewed = outbox.put(RENEWAL, renewal("t", 7))
    other = outbox.put(COMPLETION, completion("u", 3))
    await eventually(lambda: wire.written, "a write")
    stale = pb.Receipt(task_id="t", fencing_token=6, kind=COMPLETION)  # an older lease of the same task
    assert not outbox.resolve(stale)
    assert outbox.resolve(pb.Receipt(task_id="t", fencing_token=7, kind=RENEWAL, code=9, error="stale"))
    assert renewed.done() and not done.done() and not other.done()
    assert status(renewed.result()) == grpc.StatusCode.FAILED_PRECONDITION
    assert describe(renewed.result()) == "FAILED_PRECONDITION: stale"
    assert outbox.resolve(pb.Receipt(task_id="u", fencing_token=3, kind=COMPLETION))
    assert outbox.resolve(pb.Receipt(task_id="t", fencing_token=7, kind=COMPLETION, execution_status=running))
    assert (await done).execution_status == running and status(await other) == grpc.StatusCode.OK
    assert not outbox.resolve(pb.Receipt(task_id="t", fencing_token=7, kind=COMPLETION))  # answered already
    assert outbox.receipts == 3


async def test_the_same_report_twice_is_answered_in_order(outbox: Outbox, wire: Wire) -> None:
    first = outbox.put(COMPLETION, completion("t"))
    second = outbox.put(COMPLETION, completion("t"))
    await eventually(lambda: wire.written, "a write")
    for n in range(2):
        outbox.resolve(pb.Receipt(task_id="t", fencing_token=1, kind=COMPLETION, error=str(n)))
    assert ((await first).error, (await second).error) == ("0", "1")


async def test_a_report_given_up_before_its_write_is_not_sent(outbox: Outbox, wire: Wire) -> None:
    wire.hold.clear()
    outbox.put(RENEWAL, renewal("first"))
    await eventually(lambda: wire.written, "the first write")
    dropped = outbox.put(COMPLETION, completion("dropped"))
    kept = outbox.put(COMPLETION, completion("kept"))
    dropped.cancel()
    wire.hold.set()
    await eventually(lambda: len(wire.written) == 2, "the second write")
    assert [c.task_id for c in wire.written[1].completions] == ["kept"]
    assert not outbox.resolve(pb.Receipt(task_id="dropped", fencing_token=1, kind=COMPLETION))
    assert outbox.resolve(receipts_for(wire.written[1]).batch.receipts[0]) and kept.done()


async def test_writes_are_split_by_size(outbox: Outbox, wire: Wire) -> None:
    text = "x" * (MAX_WRITE_BYTES // 3)
    big = [completion(f"t{n}", text=text) for n in range(4)]
    assert all(outbox.fits(r) for r in big) and not outbox.fits(completion("huge", text=text * 4))
    for request in big:
        outbox.put(COMPLETION, request)
    await eventually(lambda: outbox.sent == 4, "every report written")
    assert [len(r.completions) for r in wire.written] == [2, 2]
    assert all(r.ByteSize() <= MAX_WRITE_BYTES for r in wire.written)


async def test_a_failed_write_and_close_give_every_report_stream_closed(outbox: Outbox, wire: Wire) -> None:
    sent = outbox.put(RENEWAL, renewal("sent"))
    await eventually(lambda: wire.written, "a write")
    wire.error = RuntimeError("broken pipe")
    lost = outbox.put(COMPLETION, completion("lost"))
    for future in (lost, sent):  # the failed write closes the outbox: the one awaiting a receipt too
        with pytest.raises(StreamClosed):
            await future
    assert outbox.closed
    with pytest.raises(StreamClosed):
        await outbox.put(COMPLETION, completion("late"))


async def test_close_fails_queued_and_pending_reports(wire: Wire) -> None:
    box = Outbox(wire.write)  # no writer: everything stays queued
    queued = box.put(COMPLETION, completion("q"))
    box.close()
    box.close()
    with pytest.raises(StreamClosed):
        await queued


async def test_unary_shapes_answers_and_errors_as_receipts() -> None:
    stub = FakeStub()
    stub.codes["FailTask"] = [grpc.StatusCode.FAILED_PRECONDITION]
    done = await unary(stub, COMPLETION, completion("t", 4), 1.0)
    assert (done.task_id, done.fencing_token, done.kind, done.code) == ("t", 4, COMPLETION, 0)
    assert done.execution_status == pb.ExecutionStatus.completed
    failed = await unary(stub, FAILURE, failure("t", 4), 1.0)
    assert status(failed) == grpc.StatusCode.FAILED_PRECONDITION and failed.error == "FailTask says FAILED_PRECONDITION"
    renewed = await unary(stub, RENEWAL, renewal("t", 4), 1.0)
    assert status(renewed) == grpc.StatusCode.OK and renewed.kind == RENEWAL
    assert [rpc for rpc, _ in stub.unary] == ["CompleteTask", "FailTask", "RenewLease"]


async def test_writes_hold_at_most_max_write_reports(outbox: Outbox, wire: Wire) -> None:
    for n in range(MAX_WRITE_REPORTS + 5):
        outbox.put(RENEWAL, renewal(f"t{n}"))
    await eventually(lambda: outbox.sent == MAX_WRITE_REPORTS + 5, "every report written")
    assert [len(r.renewals) for r in wire.written] == [MAX_WRITE_REPORTS, 5]
