"""The Work stream: tell the orchestrator who this agent is and how many slots it has; receive leases.

The stream asks for batched replies. When the orchestrator's first message is a WorkBatch, the
stream also carries this agent's reports (`report()`): queued, written coalesced by one writer
and each answered by its Receipt. Otherwise (an orchestrator that does not batch), and whenever
the stream is closed, breaks or a receipt does not come in time, a report goes by its unary RPC.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_sdk.backoff import Backoff
from ossa_sdk.receipts import Kind, Outbox, Request, StreamClosed, status, unary
from ossa_sdk.tasks import RPC_TIMEOUT_SECONDS, TaskPool

log = logging.getLogger("ossa.sdk")
EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]  # the end of a stream (missing from grpc-stubs)

# Given the id that the platform no longer knows (or None), the id to use: registers again if needed.
AgentIdSource = Callable[[str | None], Awaitable[str]]


class WorkStream:
    def __init__(
        self,
        stub: Any,
        pool: TaskPool,
        capabilities: Sequence[str],
        agent_id: AgentIdSource,
        backoff: Callable[[], Backoff] = Backoff,
        batched: bool = True,
    ) -> None:
        self._stub = stub
        self._pool = pool
        self._capabilities = list(capabilities)
        self._agent_id_source = agent_id
        self._new_backoff = backoff
        self._batched = batched
        self._call: Any = None
        self._agent_id = ""
        self._write_lock = asyncio.Lock()
        self._reopen = False
        self._outbox: Outbox | None = None  # while the open stream carries reports
        self._writer: asyncio.Task[None] | None = None
        self.sessions = 0  # how many times the stream was opened
        self.batched_sessions = 0  # of which carried reports
        self.unary_reports = 0  # reports sent by RPC (the stream did not carry them)

    def _request(self, first: bool = False) -> pb.WorkRequest:
        return pb.WorkRequest(
            agent_id=self._agent_id,
            capabilities=self._capabilities,
            slots=self._pool.slots.capacity,
            batched=first and self._batched,
        )

    @property
    def outbox(self) -> Outbox | None:
        """The open stream's reports, when it carries them."""
        return self._outbox

    async def run(self) -> None:
        """Hold the stream until cancelled, reconnecting with backoff whenever it ends or fails."""
        backoff = self._new_backoff()
        stale: str | None = None
        while True:
            self._agent_id = await self._agent_id_source(stale)
            stale = None
            call = self._stub.Work()
            try:
                async with self._write_lock:
                    await call.write(self._request(first=True))
                self._call = call
                self.sessions += 1
                log.debug("work stream open (agent %s, %d slots)", self._agent_id, self._pool.slots.capacity)
                first = True
                while (message := await call.read()) is not EOF:
                    backoff.reset()
                    if first:
                        first = False
                        self._first(call, message)
                    self._dispatch(message)
                log.warning("the orchestrator closed the work stream")
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if not self._reopen or (current is not None and current.cancelling()):
                    raise
                log.info("reopening the work stream")
                continue
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.NOT_FOUND:
                    stale = self._agent_id  # the platform forgot this agent: register again
                log.warning("work stream failed (%s: %s)", err.code().name, err.details())
            except Exception:
                log.exception("work stream failed")
            finally:
                self._stop_reports()
                self._call = None
                self._reopen = False
                call.cancel()
            delay = backoff.next()
            log.info("reconnecting the work stream in %.1fs", delay)
            await asyncio.sleep(delay)

    def reopen(self) -> None:
        """End the open stream at once; the loop opens a new one (e.g. with a new agent id)."""
        if self._call is not None:
            self._reopen = True
            self._call.cancel()

    # Batched replies and reports ---------------------------------------------------------------------

    def _first(self, call: Any, message: pb.WorkResponse) -> None:
        """The first message tells whether the orchestrator batches: then the stream carries reports."""
        if not self._batched:
            return
        if message.WhichOneof("kind") != "batch":
            log.info("the orchestrator does not batch this stream; reporting by RPC")
            return

        async def write(request: pb.WorkRequest) -> None:
            async with self._write_lock:
                await call.write(request)

        self._outbox = Outbox(write)
        self._writer = asyncio.create_task(self._outbox.run(), name="ossa-work-writer")
        self.batched_sessions += 1
        log.debug("the work stream carries reports")

    def _stop_reports(self) -> None:
        """The stream ends: reports waiting on it go by RPC."""
        outbox, self._outbox = self._outbox, None
        writer, self._writer = self._writer, None
        if outbox is not None:
            outbox.close()
        if writer is not None:
            writer.cancel()

    def report(self, kind: Kind, request: Request, timeout: float = RPC_TIMEOUT_SECONDS) -> Awaitable[pb.Receipt]:
        """Send a completion, failure or renewal; the awaitable gives its receipt (code 0: accepted).

        The report is queued at once, so reports made together go out in one message; by RPC
        when the stream does not carry it (within `timeout` seconds, each way).
        """
        outbox = self._outbox
        queued = outbox.put(kind, request) if outbox is not None and outbox.fits(request) else None
        return self._receipt(kind, request, outbox, queued, timeout)

    async def _receipt(
        self,
        kind: Kind,
        request: Request,
        outbox: Outbox | None,
        queued: asyncio.Future[pb.Receipt] | None,
        timeout: float,
    ) -> pb.Receipt:
        if outbox is not None and queued is not None:
            try:
                async with asyncio.timeout(timeout):
                    receipt = await queued
                if status(receipt) != grpc.StatusCode.CANCELLED:
                    return receipt
                log.debug("report on task %s goes by RPC: %s", request.task_id, receipt.error)  # it is stopping
            except StreamClosed as err:
                log.debug("report on task %s goes by RPC: %s", request.task_id, err)
            except TimeoutError:
                self._no_receipt(outbox, request, timeout)
        self.unary_reports += 1
        return await unary(self._stub, kind, request, timeout)

    def _no_receipt(self, outbox: Outbox, request: Request, timeout: float) -> None:
        if outbox is not self._outbox or outbox.receipts:
            log.warning("no receipt for the report on task %s in %.1fs; sending it by RPC", request.task_id, timeout)
            return
        # Never a receipt on this stream: the orchestrator ignores reports on it.
        log.warning("the orchestrator sends no receipts on this stream; reporting by RPC until it reconnects")
        self._stop_reports()

    def _dispatch(self, message: pb.WorkResponse) -> None:
        kind = message.WhichOneof("kind")
        if kind == "assignment":
            self._pool.assign(message.assignment)
        elif kind == "cancellation":
            self._pool.cancel(message.cancellation)
        elif kind == "batch":
            batch = message.batch
            for assignment in batch.assignments:
                self._pool.assign(assignment)
            for cancellation in batch.cancellations:
                self._pool.cancel(cancellation)
            for receipt in batch.receipts:
                outbox = self._outbox
                if outbox is None or not outbox.resolve(receipt):
                    log.debug("ignoring a receipt for task %s that nothing waits for", receipt.task_id)
        else:
            log.debug("ignoring an empty work message")

    async def set_slots(self, slots: int) -> None:
        """Change how many tasks run at once, and tell the orchestrator on the open stream."""
        self._pool.slots.resize(slots)
        call = self._call
        if call is None:
            return  # the next stream announces the new count
        try:
            async with self._write_lock:
                await call.write(self._request())
        except Exception as err:  # the stream is failing; it reconnects with the new count
            log.warning("could not announce %d slots on the work stream: %s", slots, err)
