"""An agent's Work stream: leases pushed by the dispatcher, cancellations, and on a batched stream the
agent's completions, failures and renewals, each answered by a Receipt after its COMMIT.

A stream whose first message says `batched: true` gets WorkBatch messages: everything queued for
it since the last write (assignments, cancellations, receipts) goes out in one message. Other
streams get one assignment or cancellation per message, as before, and report with the unary RPCs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import grpc

from orchestrator_svc import convert, validation
from orchestrator_svc.batches import Batches, Completed, Completion, Failure, Report
from orchestrator_svc.dispatch import Dispatcher
from orchestrator_svc.events import EventHub
from orchestrator_svc.outcome import Revoked
from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_runtime import tracing
from ossa_runtime.errors import DomainError, InvalidArgument
from ossa_runtime.linger import Linger

log = logging.getLogger("ossa.orchestrator.work")
_SERVICE = "/ossa.orchestrator.v1.OrchestratorService/"
RPC_NAMES: dict[int, str] = {
    pb.RECEIPT_KIND_COMPLETION: _SERVICE + "CompleteTask",
    pb.RECEIPT_KIND_FAILURE: _SERVICE + "FailTask",
    pb.RECEIPT_KIND_RENEWAL: _SERVICE + "RenewLease",
}
MAX_SLOTS = 1000
MAX_REPORTS = 1000  # completions + failures + renewals in one WorkRequest
Item = pb.Assignment | pb.Cancellation | pb.Receipt | None


def check_slots(slots: int) -> int:
    if not 1 <= slots <= MAX_SLOTS:
        raise InvalidArgument("slots", f"must be between 1 and {MAX_SLOTS}, got {slots}")
    return slots


@dataclass
class Worker:
    agent_id: str
    agent_type: str
    capabilities: list[str]
    slots: int
    batched: bool = False
    scoped: bool = False  # the caller's token acts only as this agent: reports must be about its leases


def _code(err: BaseException) -> tuple[int, str]:
    if isinstance(err, DomainError):
        return int(err.code.value[0]), str(err)
    return int(grpc.StatusCode.UNAVAILABLE.value[0]), f"could not commit: {err}"


class WorkSession:
    """One Work stream: the dispatcher and the group commits fill an outbox that the RPC drains."""

    def __init__(self, worker: Worker, dispatcher: Dispatcher, batches: Batches, hub: EventHub) -> None:
        self.worker = worker
        self.dispatcher = dispatcher
        self.batches = batches
        self.outbox: asyncio.Queue[Item] = asyncio.Queue()
        self._unsubscribe = hub.on_revoke(worker.agent_id, self._revoked)

    # What the orchestrator pushes ---------------------------------------------------------------------

    def deliver(self, rows: list[Any]) -> None:
        for row in rows:
            self.outbox.put_nowait(convert.assignment(row))

    def _revoked(self, revoked: Revoked) -> None:
        self.outbox.put_nowait(
            pb.Cancellation(task_id=revoked.task_id, fencing_token=revoked.fencing_token, reason=revoked.reason)
        )

    # What the agent reports (batched streams) ---------------------------------------------------------

    def _receipt(self, kind: int, request: Any, future: asyncio.Future[Any],
                 fill: Callable[[pb.Receipt, Any], None], started: int) -> None:  # fmt: skip
        receipt = pb.Receipt(task_id=request.task_id, fencing_token=request.fencing_token, kind=kind)  # type: ignore[arg-type]
        if future.cancelled():  # the orchestrator is stopping: the agent sends it again (to another one)
            receipt.code, receipt.error = int(grpc.StatusCode.UNAVAILABLE.value[0]), "the orchestrator is stopping"
        elif (err := future.exception()) is not None:
            receipt.code, receipt.error = _code(err)
        else:
            fill(receipt, future.result())
        self.outbox.put_nowait(receipt)
        if getattr(request, "traceparent", ""):  # the report's span, as its unary RPC would have had
            tracing.record_child(
                RPC_NAMES[kind], request.traceparent, started, time.time_ns(),
                attributes={"ossa.task_id": request.task_id, "ossa.fencing_token": request.fencing_token},
                error=receipt.error or None,
            )  # fmt: skip

    def _reports(self, request: pb.WorkRequest) -> None:
        count = len(request.completions) + len(request.failures) + len(request.renewals)
        if count > MAX_REPORTS:
            raise InvalidArgument("completions", f"at most {MAX_REPORTS} reports per message, got {count}")
        agent = self.worker.agent_id if self.worker.scoped else None
        batches = self.batches
        for c in request.completions:
            output = partial(validation.parse_output, c)
            complete = partial(_complete, batches, output, partial(validation.parse_cost, c), agent)
            self._report(pb.RECEIPT_KIND_COMPLETION, c, _completed, complete)
        for f in request.failures:
            fail = partial(_fail, batches, validation.parse_error(f), f.retryable, agent)
            self._report(pb.RECEIPT_KIND_FAILURE, f, _failed, fail)
        for r in request.renewals:
            self._report(pb.RECEIPT_KIND_RENEWAL, r, _renewed, partial(_renew, batches, agent))

    def _report(self, kind: int, request: Any, fill: Callable[[pb.Receipt, Any], None],
                submit: Callable[[str, int], asyncio.Future[Any]]) -> None:  # fmt: skip
        """Submit one report; a malformed one gets its INVALID_ARGUMENT receipt at once."""
        try:
            task_id, token = validation.parse_token(request)
            future = submit(task_id, token)
        except DomainError as err:
            receipt = pb.Receipt(task_id=request.task_id, fencing_token=request.fencing_token, kind=kind)  # type: ignore[arg-type]
            receipt.code, receipt.error = _code(err)
            self.outbox.put_nowait(receipt)
            return
        started = time.time_ns()
        future.add_done_callback(lambda done: self._receipt(kind, request, done, fill, started))

    async def _read(self, requests_: AsyncIterator[pb.WorkRequest], agent: Any) -> None:
        try:
            async for request in requests_:
                if request.slots:
                    self.worker.slots = check_slots(request.slots)
                    self.dispatcher.resize(agent, self.worker.slots)
                if self.worker.batched and (request.completions or request.failures or request.renewals):
                    self._reports(request)
        finally:
            self.outbox.put_nowait(None)  # the agent closed its side: end the stream

    # The stream ---------------------------------------------------------------------------------------

    def _drain(self, first: Item) -> tuple[pb.WorkResponse | None, bool]:
        """Everything queued now, as one WorkBatch; and whether the stream ends after it."""
        batch = pb.WorkBatch()
        item, end = first, False
        while True:
            if item is None:
                end = True
                break
            if isinstance(item, pb.Assignment):
                batch.assignments.append(item)
            elif isinstance(item, pb.Cancellation):
                batch.cancellations.append(item)
            else:
                batch.receipts.append(item)
            if self.outbox.empty():
                break
            item = self.outbox.get_nowait()
        empty = not (batch.assignments or batch.cancellations or batch.receipts)
        return (None if empty else pb.WorkResponse(batch=batch)), end

    async def run(self, requests_: AsyncIterator[pb.WorkRequest]) -> AsyncIterator[pb.WorkResponse]:
        w = self.worker
        agent = await self.dispatcher.attach(w.agent_id, w.agent_type, w.capabilities, w.slots, self)
        reader = asyncio.create_task(self._read(requests_, agent), name=f"read-{w.agent_id}")
        try:
            if w.batched:  # tells the agent at once that this stream takes its reports
                yield pb.WorkResponse(batch=pb.WorkBatch())
            linger = Linger()
            while True:
                item = await self.outbox.get()
                if w.batched:
                    await linger.wait()  # under load, more of what is queued goes in this one message
                    message, end = self._drain(item)
                    if message is not None:
                        yield message
                elif item is None:
                    end = True
                elif isinstance(item, pb.Assignment):
                    yield pb.WorkResponse(assignment=item)
                    end = False
                elif isinstance(item, pb.Cancellation):
                    yield pb.WorkResponse(cancellation=item)
                    end = False
                else:
                    end = False  # receipts exist only on batched streams
                if end:
                    if reader.done() and not reader.cancelled() and reader.exception() is not None:
                        raise reader.exception()  # type: ignore[misc]
                    return
        finally:
            self.dispatcher.detach(agent, self)  # no more leases for this stream
            self._unsubscribe()
            unsent = []
            while not self.outbox.empty():
                item = self.outbox.get_nowait()
                if isinstance(item, pb.Assignment):
                    unsent.append((item.task_id, item.fencing_token))
            if unsent:
                self.batches.undeliver(unsent, w.agent_id)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


def _complete(batches: Batches, output: Callable[[], dict[str, Any]], cost: Callable[[], float], agent: str | None,
              task_id: str, token: int) -> asyncio.Future[Completed]:  # fmt: skip
    return batches.completions.submit_nowait(Completion(task_id, token, output(), agent, cost()))


def _fail(batches: Batches, error: str, retryable: bool, agent: str | None, task_id: str,
          token: int) -> asyncio.Future[bool]:  # fmt: skip
    return batches.failures.submit_nowait(Failure(task_id, token, error, retryable, agent))


def _renew(batches: Batches, agent: str | None, task_id: str, token: int) -> asyncio.Future[tuple[datetime, str]]:
    return batches.renewals.submit_nowait(Report(task_id, token, agent))


def _completed(receipt: pb.Receipt, result: Completed) -> None:
    receipt.execution_status = result.execution_status  # type: ignore[assignment]


def _failed(receipt: pb.Receipt, will_retry: bool) -> None:
    receipt.will_retry = will_retry


def _renewed(receipt: pb.Receipt, result: tuple[datetime, str]) -> None:
    receipt.lease_expires_at.CopyFrom(convert.timestamp(result[0]))
