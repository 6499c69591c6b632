"""In-process fakes of the orchestrator for the SDK's unit tests: a Work call and a stub."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import grpc

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_sdk.work import EOF


async def eventually(check: Callable[[], Any], what: str = "condition", rounds: int = 2000) -> Any:
    """Let the loop run until `check` is truthy (fail after `rounds` short sleeps)."""
    for _ in range(rounds):
        if result := check():
            return result
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def rpc_error(code: grpc.StatusCode, details: str = "") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details, None)


def reports(request: pb.WorkRequest) -> list[pb.CompleteTaskRequest | pb.FailTaskRequest | pb.RenewLeaseRequest]:
    return [*request.completions, *request.failures, *request.renewals]


def receipts_for(request: pb.WorkRequest, code: int = 0, error: str = "") -> pb.WorkResponse:
    """A WorkBatch answering every report in `request` with `code`."""
    batch = pb.WorkBatch()
    for kind, items in (
        (pb.RECEIPT_KIND_COMPLETION, request.completions),
        (pb.RECEIPT_KIND_FAILURE, request.failures),
        (pb.RECEIPT_KIND_RENEWAL, request.renewals),
    ):
        for item in items:
            batch.receipts.add(
                task_id=item.task_id, fencing_token=item.fencing_token, kind=kind, code=code, error=error
            )
    return pb.WorkResponse(batch=batch)


class FakeCall:
    """A Work call: records what the agent writes; the test pushes what it reads."""

    def __init__(self) -> None:
        self.requests: list[pb.WorkRequest] = []
        self._inbox: asyncio.Queue[pb.WorkResponse | BaseException | None] = asyncio.Queue()
        self.cancelled = False
        self.write_error: BaseException | None = None

    async def write(self, request: pb.WorkRequest) -> None:
        if self.cancelled:
            raise asyncio.InvalidStateError("RPC already finished")
        if self.write_error is not None:
            raise self.write_error
        self.requests.append(request)

    async def read(self) -> Any:
        item = await self._inbox.get()
        if item is None:
            return EOF
        if isinstance(item, BaseException):
            raise item
        return item

    def push(self, message: pb.WorkResponse) -> None:
        self._inbox.put_nowait(message)

    def fail(self, error: BaseException) -> None:
        self._inbox.put_nowait(error)

    def end(self) -> None:
        self._inbox.put_nowait(None)

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._inbox.put_nowait(asyncio.CancelledError())  # as grpc.aio does for a pending read

    @property
    def reports(self) -> list[pb.WorkRequest]:
        """The requests that carried reports."""
        return [r for r in self.requests if reports(r)]


class FakeStub:
    """OrchestratorService: Work calls, and unary reports answered with `codes` (default OK)."""

    def __init__(self) -> None:
        self.calls: list[FakeCall] = []
        self.unary: list[tuple[str, Any]] = []
        self.codes: dict[str, list[grpc.StatusCode]] = defaultdict(list)  # per RPC, used up in order

    def Work(self) -> FakeCall:
        call = FakeCall()
        self.calls.append(call)
        return call

    def _answer(self, rpc: str, request: Any) -> None:
        self.unary.append((rpc, request))
        if self.codes[rpc]:
            code = self.codes[rpc].pop(0)
            if code != grpc.StatusCode.OK:
                raise rpc_error(code, f"{rpc} says {code.name}")

    async def CompleteTask(self, request: pb.CompleteTaskRequest, timeout: float) -> pb.CompleteTaskResponse:
        self._answer("CompleteTask", request)
        return pb.CompleteTaskResponse(execution_status=pb.ExecutionStatus.completed)

    async def FailTask(self, request: pb.FailTaskRequest, timeout: float) -> pb.FailTaskResponse:
        self._answer("FailTask", request)
        return pb.FailTaskResponse(will_retry=request.retryable)

    async def RenewLease(self, request: pb.RenewLeaseRequest, timeout: float) -> pb.RenewLeaseResponse:
        self._answer("RenewLease", request)
        return pb.RenewLeaseResponse()

    def rpcs(self, name: str) -> list[Any]:
        return [request for rpc, request in self.unary if rpc == name]
