"""The Work stream with an in-process fake orchestrator: batched replies, reports on the stream, fallbacks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_sdk.backoff import Backoff
from ossa_sdk.receipts import COMPLETION, RENEWAL, status
from ossa_sdk.tasks import TaskPool
from ossa_sdk.work import WorkStream
from tests.unit.ossa_sdk.fakes import FakeCall, FakeStub, eventually, receipts_for, rpc_error


class Gate:
    """An async handler that waits until released; `fail` makes it raise instead of returning."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0
        self.fail = False

    async def __call__(self, task_input: dict[str, Any]) -> dict[str, Any]:
        self.started += 1
        await self.release.wait()
        if self.fail:
            raise RuntimeError("handler broke")
        return {"n": task_input["params"]["n"]}


@dataclass
class Agent:
    stub: FakeStub
    pool: TaskPool
    work: WorkStream
    gate: Gate

    @property
    def call(self) -> FakeCall:
        return self.stub.calls[-1]

    async def opened(self, count: int = 1) -> FakeCall:
        await eventually(lambda: len(self.stub.calls) >= count and self.stub.calls[-1].requests, "the Work stream")
        return self.call


def assignment(n: int, lease_seconds: int = 30) -> pb.Assignment:
    a = pb.Assignment(task_id=f"t{n}", fencing_token=100 + n, step_id="s", lease_seconds=lease_seconds, attempt=1)
    a.input.update({"params": {"n": n}, "context": {}, "upstream": {}})
    return a


def batch(*assignments: pb.Assignment, cancellations: tuple[pb.Cancellation, ...] = ()) -> pb.WorkResponse:
    return pb.WorkResponse(batch=pb.WorkBatch(assignments=assignments, cancellations=cancellations))


async def agent_id(stale: str | None) -> str:
    return "agent-1"


def quick() -> Backoff:
    return Backoff(initial=0.01, maximum=0.02)


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., Agent]]:
    running: list[tuple[Agent, asyncio.Task[None]]] = []

    def start(slots: int = 16, **options: Any) -> Agent:
        stub, gate = FakeStub(), Gate()
        pool = TaskPool(stub, gate, slots, report_timeout=2.0)
        work = WorkStream(stub, pool, ["echo"], agent_id, quick, **options)
        pool.send = work.report
        agent = Agent(stub, pool, work, gate)
        running.append((agent, asyncio.create_task(work.run())))
        return agent

    yield start
    for agent, task in running:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await agent.pool.abort()


async def test_first_request_asks_for_batches_and_a_batch_is_dispatched(make: Callable[..., Agent]) -> None:
    agent = make(slots=4)
    call = await agent.opened()
    first = call.requests[0]
    assert (first.agent_id, list(first.capabilities), first.slots, first.batched) == ("agent-1", ["echo"], 4, True)
    call.push(batch(assignment(1), assignment(2), cancellations=(pb.Cancellation(task_id="t1", fencing_token=101),)))
    await eventually(lambda: agent.work.outbox is not None and agent.gate.started == 1, "t2 running")
    assert set(agent.pool.runs) == {"t2"}
    await agent.work.set_slots(8)
    assert call.requests[-1].slots == 8 and not call.requests[-1].batched


async def test_many_completions_at_once_go_in_one_message(make: Callable[..., Agent]) -> None:
    agent = make()
    call = await agent.opened()
    call.push(batch(*(assignment(n) for n in range(16))))
    await eventually(lambda: agent.gate.started == 16, "16 handlers")
    agent.gate.release.set()
    await eventually(lambda: call.reports, "the reports")
    (request,) = call.reports
    assert sorted(c.task_id for c in request.completions) == sorted(f"t{n}" for n in range(16))
    call.push(receipts_for(request))
    await eventually(lambda: not agent.pool.runs, "every run to end")
    assert agent.stub.unary == [] and agent.work.unary_reports == 0


async def test_receipt_codes_are_handled_like_rpc_errors(make: Callable[..., Agent], caplog: Any) -> None:
    agent = make()
    call = await agent.opened()
    call.push(batch(assignment(1)))
    await eventually(lambda: agent.gate.started, "the handler")
    agent.gate.release.set()
    await eventually(lambda: call.reports, "the completion")
    call.push(receipts_for(call.reports[0], code=grpc.StatusCode.UNAVAILABLE.value[0], error="try again"))
    await eventually(lambda: len(call.reports) == 2, "the completion again")  # transient: retried with backoff
    with caplog.at_level("WARNING", logger="ossa.sdk"):
        call.push(receipts_for(call.reports[1], code=grpc.StatusCode.FAILED_PRECONDITION.value[0], error="stale"))
        await eventually(lambda: not agent.pool.runs, "the run to end")
    assert any("rejected (FAILED_PRECONDITION: stale)" in r.getMessage() for r in caplog.records)
    assert len(call.reports) == 2 and agent.stub.unary == []  # rejected: never retried


async def test_failures_go_on_the_stream(make: Callable[..., Agent]) -> None:
    agent = make()
    agent.gate.fail = True
    call = await agent.opened()
    call.push(batch(assignment(1), assignment(2)))
    await eventually(lambda: agent.gate.started == 2, "the handlers")
    agent.gate.release.set()
    await eventually(lambda: call.reports, "the failures")
    (request,) = call.reports
    assert sorted((f.task_id, f.error, f.retryable) for f in request.failures) == [
        ("t1", "RuntimeError: handler broke", True),
        ("t2", "RuntimeError: handler broke", True),
    ]
    call.push(receipts_for(request))
    await eventually(lambda: not agent.pool.runs, "the runs to end")


async def test_an_orchestrator_that_does_not_batch_gets_rpcs(make: Callable[..., Agent]) -> None:
    agent = make()
    call = await agent.opened()
    call.push(pb.WorkResponse(assignment=assignment(1)))  # a single-style first message
    call.push(pb.WorkResponse(assignment=assignment(2)))
    await eventually(lambda: agent.gate.started == 2, "the handlers")
    assert agent.work.outbox is None
    agent.gate.release.set()
    await eventually(lambda: len(agent.stub.rpcs("CompleteTask")) == 2, "CompleteTask twice")
    assert call.reports == [] and agent.work.unary_reports == 2


async def test_reports_before_the_first_message_go_by_rpc(make: Callable[..., Agent]) -> None:
    agent = make()
    await agent.opened()
    receipt = await agent.work.report(COMPLETION, pb.CompleteTaskRequest(task_id="t", fencing_token=1))
    assert status(receipt) == grpc.StatusCode.OK and len(agent.stub.rpcs("CompleteTask")) == 1


async def test_no_receipt_ever_falls_back_to_rpcs_for_that_stream(make: Callable[..., Agent]) -> None:
    agent = make()
    call = await agent.opened()
    call.push(batch())  # batches, but (say) ignores reports
    await eventually(lambda: agent.work.outbox is not None, "a batched stream")
    request = pb.RenewLeaseRequest(task_id="t", fencing_token=1)
    receipt = await agent.work.report(RENEWAL, request, timeout=0.05)
    assert status(receipt) == grpc.StatusCode.OK and agent.stub.rpcs("RenewLease") == [request]
    assert [r.renewals[0] for r in call.reports] == [request]
    assert agent.work.outbox is None  # the stream no longer carries reports
    await agent.work.report(RENEWAL, request)
    assert len(agent.stub.rpcs("RenewLease")) == 2 and len(call.reports) == 1


async def test_a_late_receipt_after_others_falls_back_for_that_report_only(make: Callable[..., Agent]) -> None:
    agent = make()
    call = await agent.opened()
    call.push(batch())
    await eventually(lambda: agent.work.outbox is not None, "a batched stream")
    answered = agent.work.report(RENEWAL, pb.RenewLeaseRequest(task_id="a", fencing_token=1))
    await eventually(lambda: call.reports, "the first renewal")
    call.push(receipts_for(call.reports[0]))
    assert status(await answered) == grpc.StatusCode.OK
    receipt = await agent.work.report(RENEWAL, pb.RenewLeaseRequest(task_id="b", fencing_token=1), timeout=0.05)
    assert status(receipt) == grpc.StatusCode.OK and len(agent.stub.rpcs("RenewLease")) == 1
    assert agent.work.outbox is not None  # receipts came before: only this one was late


async def test_a_broken_stream_sends_waiting_reports_by_rpc_and_reconnects(make: Callable[..., Agent]) -> None:
    agent = make()
    call = await agent.opened()
    call.push(batch())
    await eventually(lambda: agent.work.outbox is not None, "a batched stream")
    waiting = asyncio.ensure_future(agent.work.report(COMPLETION, pb.CompleteTaskRequest(task_id="t", fencing_token=1)))
    await eventually(lambda: call.reports, "the completion on the stream")
    call.fail(rpc_error(grpc.StatusCode.UNAVAILABLE, "orchestrator restarting"))
    assert status(await waiting) == grpc.StatusCode.OK
    assert [r.task_id for r in agent.stub.rpcs("CompleteTask")] == ["t"]
    again = await agent.opened(count=2)
    assert again.requests[0].batched and agent.work.sessions == 2
    again.push(batch())
    await eventually(lambda: agent.work.outbox is not None, "the new stream to carry reports")
    assert agent.work.batched_sessions == 2


async def test_a_failed_write_sends_the_reports_by_rpc(make: Callable[..., Agent]) -> None:
    agent = make()
    call = await agent.opened()
    call.push(batch())
    await eventually(lambda: agent.work.outbox is not None, "a batched stream")
    call.write_error = RuntimeError("stream reset")
    receipt = await agent.work.report(COMPLETION, pb.CompleteTaskRequest(task_id="t", fencing_token=1))
    assert status(receipt) == grpc.StatusCode.OK and len(agent.stub.rpcs("CompleteTask")) == 1


async def test_unbatched_option_never_asks(make: Callable[..., Agent]) -> None:
    agent = make(batched=False)
    call = await agent.opened()
    assert not call.requests[0].batched
    call.push(batch(assignment(1)))  # dispatched all the same
    await eventually(lambda: agent.gate.started, "the handler")
    assert agent.work.outbox is None


async def test_renewals_of_many_runs_go_in_one_message(make: Callable[..., Agent]) -> None:
    agent = make()
    call = await agent.opened()
    call.push(batch(*(assignment(n, lease_seconds=1) for n in range(8))))
    await eventually(lambda: agent.gate.started == 8, "8 handlers")
    await eventually(lambda: call.reports, "the renewals")
    (request,) = call.reports
    assert sorted(r.task_id for r in request.renewals) == sorted(f"t{n}" for n in range(8))
    call.push(receipts_for(request))
    await eventually(lambda: all(run.renewals == 1 for run in agent.pool.runs.values()), "8 renewals")
    assert agent.stub.unary == []


async def test_a_cancelled_receipt_sends_the_report_by_rpc(make: Callable[..., Agent]) -> None:
    agent = make()
    call = await agent.opened()
    call.push(batch())
    await eventually(lambda: agent.work.outbox is not None, "a batched stream")
    answer = asyncio.ensure_future(agent.work.report(COMPLETION, pb.CompleteTaskRequest(task_id="t", fencing_token=1)))
    await eventually(lambda: call.reports, "the completion on the stream")
    call.push(receipts_for(call.reports[0], code=grpc.StatusCode.CANCELLED.value[0], error="stopping"))
    assert status(await answer) == grpc.StatusCode.OK  # the orchestrator was stopping: sent again by RPC
    assert len(agent.stub.rpcs("CompleteTask")) == 1


async def test_reports_carry_the_runs_trace_context(make: Callable[..., Agent]) -> None:
    agent = make()
    call = await agent.opened()
    a = assignment(1)
    a.traceparent = "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"
    call.push(batch(a))
    await eventually(lambda: agent.gate.started, "the handler")
    agent.gate.release.set()
    await eventually(lambda: call.reports, "the completion")
    traceparent = call.reports[0].completions[0].traceparent
    assert traceparent.startswith("00-0123456789abcdef0123456789abcdef-")  # the task.run span (or its parent)
