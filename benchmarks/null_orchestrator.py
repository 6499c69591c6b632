"""The orchestrator's wire protocol with nothing behind it: the transport's ceiling for dispatch.

What `bench_dispatch_ceiling.py` puts where the orchestrator normally is. It speaks the same
generated service on a grpc.aio server on uvloop (as the orchestrator does), so Envoy's REST
transcoding and the real `ossa agent serve` agents work against it unchanged, but it keeps nothing:
no PostgreSQL, no Redis, no interceptors (auth, metrics, tracing, logs), no validation, no leases
that expire. A start becomes an Assignment handed to an agent stream with a free slot (or queued in
memory until one frees); a completion on the Work stream frees the slot and is answered by its
Receipt, as the orchestrator's batched streams do. Whatever this reaches is an upper bound for the
platform on the same machine and the same call paths.

Implemented: StartExecution, StartExecutions, Work (batched streams only) and ListExecutions with
status COMPLETED (offset/limit over the completed count, so a client can wait for "n completed").
Usage (from the repository root): python -m benchmarks.null_orchestrator --port 0 (prints "port N" once serving).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa.orchestrator.v1 import orchestrator_pb2_grpc
from ossa_runtime import eventloop

LEASE_SECONDS = 300


@dataclass
class Stream:
    """One agent's Work stream: its free slots and what waits to be written to it."""

    slots: int
    outbox: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    leased: int = 0


class NullOrchestrator(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    def __init__(self) -> None:
        self.streams: list[Stream] = []
        self.queued: collections.deque[pb.Assignment] = collections.deque()
        self.completed: list[str] = []  # execution ids, in the order their task completed
        self.executions: dict[str, str] = {}  # task id -> execution id, while leased
        self._next = 0

    # Starting ---------------------------------------------------------------------------------------

    def _start(self, request: pb.StartExecutionRequest) -> pb.StartExecutionResponse:
        execution_id = str(uuid.uuid4())
        assignment = pb.Assignment(
            task_id=str(uuid.uuid4()), execution_id=execution_id, step_id="echo", input=request.context,
            fencing_token=1, lease_seconds=LEASE_SECONDS, timeout_seconds=LEASE_SECONDS, attempt=1,
        )  # fmt: skip
        assignment.lease_expires_at.FromSeconds(int(time.time()) + LEASE_SECONDS)
        self.executions[assignment.task_id] = execution_id
        self.queued.append(assignment)
        self._hand_out()
        response = pb.StartExecutionResponse(
            execution_id=execution_id, workflow_id=request.workflow_id, status=pb.ExecutionStatus.pending
        )
        response.started_at.GetCurrentTime()
        return response

    def _hand_out(self) -> None:
        """Queued assignments to streams with free slots, round robin."""
        n = len(self.streams)
        while self.queued and n:
            for i in range(n):
                stream = self.streams[(self._next + i) % n]
                if stream.leased < stream.slots:
                    self._next = (self._next + i + 1) % n
                    stream.leased += 1
                    stream.outbox.put_nowait(self.queued.popleft())
                    break
            else:
                return

    async def StartExecution(self, request: pb.StartExecutionRequest, context: Any) -> pb.StartExecutionResponse:
        return self._start(request)

    async def StartExecutions(self, request: pb.StartExecutionsRequest, context: Any) -> pb.StartExecutionsResponse:
        return pb.StartExecutionsResponse(executions=[self._start(item) for item in request.executions])

    async def ListExecutions(self, request: pb.ListExecutionsRequest, context: Any) -> pb.ListExecutionsResponse:
        if request.status != pb.ExecutionStatus.completed:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "status: only COMPLETED is listed here")
        chosen = self.completed[request.offset : request.offset + max(1, request.limit)]
        return pb.ListExecutionsResponse(
            executions=[pb.Execution(id=i, status=pb.ExecutionStatus.completed) for i in chosen]
        )

    # The Work stream --------------------------------------------------------------------------------

    async def Work(self, requests: AsyncIterator[pb.WorkRequest], context: Any) -> AsyncIterator[pb.WorkResponse]:
        first = await anext(aiter(requests))
        if not first.batched:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "batched: only batched Work streams are served here")
        stream = Stream(slots=max(1, first.slots))
        self.streams.append(stream)
        reader = asyncio.create_task(self._read(requests, stream))
        try:
            yield pb.WorkResponse(batch=pb.WorkBatch())
            while True:
                item = await stream.outbox.get()
                batch = pb.WorkBatch()
                while item is not None:
                    (batch.assignments if isinstance(item, pb.Assignment) else batch.receipts).append(item)
                    item = None if stream.outbox.empty() else stream.outbox.get_nowait()
                yield pb.WorkResponse(batch=batch)
        finally:
            self.streams.remove(stream)
            reader.cancel()

    async def _read(self, requests: AsyncIterator[pb.WorkRequest], stream: Stream) -> None:
        async for request in requests:
            if request.slots:
                stream.slots = request.slots
            for c in request.completions:
                stream.leased -= 1
                self.completed.append(self.executions.pop(c.task_id, c.task_id))
                receipt = pb.Receipt(task_id=c.task_id, fencing_token=c.fencing_token, kind=pb.RECEIPT_KIND_COMPLETION)
                receipt.execution_status = pb.ExecutionStatus.completed
                stream.outbox.put_nowait(receipt)
            for r in request.renewals:
                receipt = pb.Receipt(task_id=r.task_id, fencing_token=r.fencing_token, kind=pb.RECEIPT_KIND_RENEWAL)
                receipt.lease_expires_at.FromSeconds(int(time.time()) + LEASE_SECONDS)
                stream.outbox.put_nowait(receipt)
            for f in request.failures:
                stream.leased -= 1
                self.executions.pop(f.task_id, None)
                stream.outbox.put_nowait(
                    pb.Receipt(task_id=f.task_id, fencing_token=f.fencing_token, kind=pb.RECEIPT_KIND_FAILURE)
                )
            self._hand_out()


async def serve(port: int) -> None:
    server = grpc.aio.server()
    orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(NullOrchestrator(), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"port {bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    with contextlib.suppress(Exception):
        await server.stop(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    eventloop.run(serve(parser.parse_args().port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
