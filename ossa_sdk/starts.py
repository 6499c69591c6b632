"""`StartBatcher`: concurrent `Client.start()` calls share StartExecutions calls.

A start made while no call is under way goes at once, alone, as a plain StartExecution (no
waiting for company). Starts made while `max_in_flight` calls (default 1) are under way queue, and
the next call takes everything queued (up to `max_batch`) as one StartExecutions: each item keeps
its own idempotency key, and each caller gets its own execution id. So a producer with many starts
in flight pays the per-call cost (gRPC, Envoy, the orchestrator's interceptors) once per batch
instead of once per start, the way the Kafka and Pub/Sub clients batch; a lone caller sees no
difference, and a start made while one is under way waits for it (one round trip, a few ms).

When a StartExecutions of n starts is answered, the next call waits until n starts are queued again
or `linger` (1 ms) has passed, whichever is first: the callers it just answered usually start again
at once, and without the wait the first of them went alone and the rest a round trip later (two
calls per round instead of one). After a call of one start nothing waits.
Measured with bench_orchestrator.py --start --cli-only (16 starts in flight, one-step executions
run by 2 x 16 `ossa agent serve` echo slots, Celery beside it in the same run), 2026-12-05 and,
for the wait, medians of 3 alternating runs on 2026-12-06:

    one StartExecution per start (generated stubs)   730-745 tasks/s, 0.92-0.93 orchestrator CPU ms/task
    Client.start, max_in_flight 2                    1,102 tasks/s (395 calls), 0.54 ms
    Client.start, max_in_flight 1                    1,239 tasks/s (250 calls), 0.44 ms
    Client.start, the same, before / with the wait   1,171 / 1,491 tasks/s, 0.46 / 0.36 ms

StartExecutions is all or none. When a batch is refused for one of its items (INVALID_ARGUMENT,
NOT_FOUND, FAILED_PRECONDITION, ALREADY_EXISTS: nothing was started), each of its starts is made
again alone, so every caller gets the answer it would have had by itself: its own execution, or its
own error. Any other error (UNAVAILABLE, DEADLINE_EXCEEDED, ...) reaches every caller of the
batch, as it would each lone caller: whether the runs started is as unknown as for a lone start,
and idempotency keys make a retry safe. A server without StartExecutions (UNIMPLEMENTED) gets
lone starts from then on. A caller cancelled while queued leaves the queue (nothing is started).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

import grpc

from ossa.orchestrator.v1 import orchestrator_pb2 as pb

One = Callable[[pb.StartExecutionRequest], Awaitable[pb.StartExecutionResponse]]
Many = Callable[[pb.StartExecutionsRequest], Awaitable[pb.StartExecutionsResponse]]
Pending = tuple[pb.StartExecutionRequest, asyncio.Future[pb.StartExecutionResponse]]
# The server refused the batch because of an item in it, before starting anything.
ITEM_ERRORS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
    }
)


class StartBatcher:
    """Sends starts through `one` (StartExecution) when alone and `many` (StartExecutions) when several wait."""

    def __init__(self, one: One, many: Many, *, max_batch: int = 100, max_in_flight: int = 1,
                 linger: float = 0.001) -> None:  # fmt: skip
        if not 1 <= max_batch <= 1000:
            raise ValueError(f"max_batch must be from 1 to 1000 (the server's limit), got {max_batch}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be 1 or more, got {max_in_flight}")
        if not 0 <= linger <= 1:
            raise ValueError(f"linger must be from 0 to 1 second, got {linger}")
        self._one = one
        self._many = many
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self.linger = linger
        self.calls = 0  # calls made (StartExecution and StartExecutions)
        self.batched = 0  # starts sent in StartExecutions calls
        self._queue: deque[Pending] = deque()
        self._in_flight = 0
        self._unimplemented = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._hold: asyncio.TimerHandle | None = None  # the next call waits for company until then
        self._target = 0  # ... or until this many starts are queued

    async def start(self, request: pb.StartExecutionRequest) -> pb.StartExecutionResponse:
        future: asyncio.Future[pb.StartExecutionResponse] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        self._pump()
        return await future  # cancelled while queued: _pump skips it

    def _pump(self) -> None:
        if self._hold is not None:
            if len(self._queue) < self._target:
                return
            self._hold.cancel()
            self._hold = None
        while self._queue and self._in_flight < self.max_in_flight:
            batch: list[Pending] = []
            while self._queue and len(batch) < self.max_batch:
                pending = self._queue.popleft()
                if not pending[1].done():  # its caller gave up while it waited
                    batch.append(pending)
            if not batch:
                return
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[Pending]) -> None:
        try:
            if len(batch) == 1 or self._unimplemented:
                await asyncio.gather(*(self._alone(pending) for pending in batch))
            else:
                await self._together(batch)
        finally:
            for _, future in batch:  # only if _send itself was cancelled (the loop is closing)
                if not future.done():
                    future.cancel()
            self._in_flight -= 1
            if len(batch) > 1 and self.linger > 0 and self._hold is None:
                self._target = len(batch)
                self._hold = asyncio.get_running_loop().call_later(self.linger, self._expire)
            self._pump()

    def _expire(self) -> None:
        self._hold = None
        self._pump()

    async def _alone(self, pending: Pending) -> None:
        request, future = pending
        self.calls += 1
        try:
            reply = await self._one(request)
        except Exception as err:  # the caller's to see, whatever it is
            _settle(future, error=err)
        else:
            _settle(future, value=reply)

    async def _together(self, batch: list[Pending]) -> None:
        self.calls += 1
        self.batched += len(batch)
        try:
            reply = await self._many(pb.StartExecutionsRequest(executions=[request for request, _ in batch]))
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                self._unimplemented = True
            elif err.code() not in ITEM_ERRORS:
                for _, future in batch:
                    _settle(future, error=err)
                return
            await asyncio.gather(*(self._alone(pending) for pending in batch))  # nothing started: each alone
            return
        except Exception as err:  # e.g. a closed channel: every caller sees it
            for _, future in batch:
                _settle(future, error=err)
            return
        if len(reply.executions) != len(batch):
            wrong = RuntimeError(f"StartExecutions answered {len(reply.executions)} runs for {len(batch)}")
            for _, future in batch:
                _settle(future, error=wrong)
            return
        for (_, future), one in zip(batch, reply.executions, strict=True):
            _settle(future, value=one)


def _settle(
    future: asyncio.Future[pb.StartExecutionResponse],
    *,
    value: pb.StartExecutionResponse | None = None,
    error: BaseException | None = None,
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value if value is not None else pb.StartExecutionResponse())
