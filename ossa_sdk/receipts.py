"""Reports (completions, failures, renewals) and their receipts, on the Work stream or by unary RPC.

On a batched Work stream an `Outbox` queues reports and one writer task sends everything queued
since its last write in one WorkRequest; the orchestrator answers each report with a Receipt
(after its COMMIT), matched back by kind, task id and fencing token. `unary` sends one report as
CompleteTask/FailTask/RenewLease and shapes the answer as a Receipt, so callers handle both alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import grpc

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_runtime.linger import Linger

log = logging.getLogger("ossa.sdk")

Kind: TypeAlias = "pb.ReceiptKind"
COMPLETION: Kind = pb.RECEIPT_KIND_COMPLETION
FAILURE: Kind = pb.RECEIPT_KIND_FAILURE
RENEWAL: Kind = pb.RECEIPT_KIND_RENEWAL
Request: TypeAlias = pb.CompleteTaskRequest | pb.FailTaskRequest | pb.RenewLeaseRequest
# Send one report, waiting up to `timeout` seconds: (kind, request, timeout) -> its receipt.
Report: TypeAlias = Callable[[Kind, Request, float], Awaitable[pb.Receipt]]
Key: TypeAlias = tuple[int, str, int]

# The lease is gone (stale fencing token, task finished or cancelled): never retried.
REJECTED = frozenset({grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND})
# The platform is restarting or overloaded: reports are retried with backoff.
TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)
# One WorkRequest carries at most this much; a larger report goes by its unary RPC (the
# orchestrator refuses messages over 16 MiB, and one would end the stream for every report on it).
MAX_WRITE_BYTES = 1 << 20
MAX_WRITE_REPORTS = 1000  # and at most this many reports (the orchestrator's limit per message)
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def status(receipt: pb.Receipt) -> grpc.StatusCode:
    """The receipt's code as a gRPC status code."""
    return _CODES.get(receipt.code, grpc.StatusCode.UNKNOWN)


def describe(receipt: pb.Receipt) -> str:
    """`CODE: error`, as the SDK logs a refused report."""
    return f"{status(receipt).name}: {receipt.error}"


def key(kind: Kind, request: Request | pb.Receipt) -> Key:
    return (int(kind), request.task_id, request.fencing_token)


async def unary(stub: Any, kind: Kind, request: Request, timeout: float) -> pb.Receipt:
    """Send one report by its unary RPC; errors become the receipt's code, as on the stream."""
    receipt = pb.Receipt(task_id=request.task_id, fencing_token=request.fencing_token, kind=kind)
    try:
        if isinstance(request, pb.CompleteTaskRequest):
            completed = await stub.CompleteTask(request, timeout=timeout)
            receipt.execution_status = completed.execution_status
        elif isinstance(request, pb.FailTaskRequest):
            failed = await stub.FailTask(request, timeout=timeout)
            receipt.will_retry = failed.will_retry
        else:
            renewed = await stub.RenewLease(request, timeout=timeout)
            receipt.lease_expires_at.CopyFrom(renewed.lease_expires_at)
    except grpc.aio.AioRpcError as err:
        receipt.code = err.code().value[0]
        receipt.error = err.details() or ""
    return receipt


class StreamClosed(Exception):
    """The stream stopped carrying reports before this one's receipt came: send it another way."""


@dataclass(eq=False)
class _Entry:
    kind: Kind
    request: Request
    size: int
    future: asyncio.Future[pb.Receipt] = field(repr=False)


class Outbox:
    """One batched stream's reports: queued, written coalesced by `run()`, resolved by receipts."""

    def __init__(self, write: Callable[[pb.WorkRequest], Awaitable[None]]) -> None:
        self._write = write
        self._queue: deque[_Entry] = deque()
        self._pending: dict[Key, deque[asyncio.Future[pb.Receipt]]] = {}
        self._ready = asyncio.Event()
        self.closed = False
        self.writes = 0  # WorkRequests written
        self.sent = 0  # reports in them
        self.receipts = 0  # receipts matched

    def fits(self, request: Request) -> bool:
        """Whether the report is small enough for the stream (else: its unary RPC)."""
        return request.ByteSize() <= MAX_WRITE_BYTES - 64

    def put(self, kind: Kind, request: Request) -> asyncio.Future[pb.Receipt]:
        """Queue a report for the next write; the future gets its receipt (or StreamClosed)."""
        future: asyncio.Future[pb.Receipt] = asyncio.get_running_loop().create_future()
        if self.closed:
            future.set_exception(StreamClosed("the stream is closed"))
            return future
        k = key(kind, request)
        waiting = self._pending.setdefault(k, deque())
        waiting.append(future)
        future.add_done_callback(lambda f: self._forget(k, f))
        self._queue.append(_Entry(kind, request, request.ByteSize(), future))
        self._ready.set()
        return future

    def _forget(self, k: Key, future: asyncio.Future[pb.Receipt]) -> None:
        waiting = self._pending.get(k)
        if waiting is not None and future in waiting:
            waiting.remove(future)
            if not waiting:
                del self._pending[k]

    def resolve(self, receipt: pb.Receipt) -> bool:
        """Hand a receipt to the oldest report it answers; False if none waits for it."""
        waiting = self._pending.get(key(receipt.kind, receipt))
        while waiting:
            future = waiting[0]
            if not future.done():
                future.set_result(receipt)  # its done callback forgets it
                self.receipts += 1
                return True
            waiting.popleft()
        return False

    async def run(self) -> None:
        """The writer: whenever reports are queued, send them all (up to MAX_WRITE_BYTES/REPORTS a message)."""
        linger = Linger()
        while not self.closed:
            await self._ready.wait()
            await linger.wait()  # under load, reports made a moment apart share one message
            self._ready.clear()
            while self._queue and not self.closed:
                batch = self._take()
                if batch:
                    await self._send(batch)

    def _take(self) -> list[_Entry]:
        batch: list[_Entry] = []
        size = 0
        while (
            self._queue
            and len(batch) < MAX_WRITE_REPORTS
            and (not batch or size + self._queue[0].size <= MAX_WRITE_BYTES)
        ):
            entry = self._queue.popleft()
            if not entry.future.done():  # not given up on (cancelled) meanwhile
                batch.append(entry)
                size += entry.size
        return batch

    async def _send(self, batch: list[_Entry]) -> None:
        request = pb.WorkRequest()
        for entry in batch:
            if isinstance(entry.request, pb.CompleteTaskRequest):
                request.completions.append(entry.request)
            elif isinstance(entry.request, pb.FailTaskRequest):
                request.failures.append(entry.request)
            else:
                request.renewals.append(entry.request)
        try:
            await self._write(request)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                self.close()
                raise
            self._broken(batch, "the stream was cancelled")  # grpc cancels a write on a cancelled call
        except Exception as err:
            self._broken(batch, f"{type(err).__name__}: {err}")
        else:
            self.writes += 1
            self.sent += len(batch)

    def _broken(self, batch: list[_Entry], why: str) -> None:
        log.warning("could not write %d report(s) on the work stream (%s); sending them by RPC", len(batch), why)
        for entry in batch:
            if not entry.future.done():
                entry.future.set_exception(StreamClosed(why))
        self.close()

    def close(self) -> None:
        """Stop: every report queued or awaiting its receipt gets StreamClosed (idempotent)."""
        self.closed = True
        self._ready.set()
        futures = [entry.future for entry in self._queue]
        futures += [future for waiting in self._pending.values() for future in waiting]
        self._queue.clear()
        self._pending.clear()
        for future in futures:
            if not future.done():
                future.set_exception(StreamClosed("the work stream closed before the receipt came"))
