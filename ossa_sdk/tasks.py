"""Running assigned tasks: slots, lease renewal, reporting results, cancellation and draining.

One `TaskPool` per agent. Each assignment becomes an asyncio task that waits for a free slot,
runs the handler under the attempt's timeout and reports its completion or failure with the
lease's fencing token; the pool's one renewal loop (`Renewals`) renews the lease every
`lease_seconds / 3` until the result is reported. Reports go through `send`: the Work stream's
`report` once the agent holds one (coalesced on the stream, else by RPC), by RPC before that.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2
from opentelemetry import context as otel_context
from opentelemetry import trace

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_runtime import tracing
from ossa_sdk.backoff import Backoff
from ossa_sdk.errors import OutputError, PermanentError
from ossa_sdk.handlers import Handler, TaskInput, TaskResult, describe, invoke, to_output
from ossa_sdk.receipts import COMPLETION, FAILURE, REJECTED, TRANSIENT, Kind, Report, Request, status, unary
from ossa_sdk.receipts import describe as describe_receipt
from ossa_sdk.renewals import Renewals
from ossa_sdk.slots import Slots

log = logging.getLogger("ossa.sdk")

DEFAULT_LEASE_SECONDS = 30
RPC_TIMEOUT_SECONDS = 10.0
# After the grace period, stopped tasks get this long to report their failure.
FINAL_REPORT_SECONDS = 5.0


class HandlerTimeout(Exception):
    """The handler ran longer than the assignment's timeout_seconds."""


@dataclass(eq=False)
class Run:
    """One lease of one task held by this agent."""

    task_id: str
    token: int
    input: TaskInput
    lease_seconds: float
    timeout_seconds: int
    work: asyncio.Task[Any] = field(init=False)
    started: bool = False
    renewals: int = 0
    revoked: str | None = None
    report_revocation: bool = False
    # `task.run <step>`: child of the orchestrator's span of this attempt (Assignment.traceparent).
    span: trace.Span = trace.INVALID_SPAN
    # The context with that span current: the run's handler, renewals and reports run in it.
    context: contextvars.Context = field(default_factory=contextvars.Context)


class TaskPool:
    def __init__(
        self,
        stub: Any,
        handler: Handler,
        slots: int,
        on_change: Callable[[], None] = lambda: None,
        report_timeout: float = 30.0,
    ) -> None:
        self._handler = handler
        self._on_change = on_change
        self._report_timeout = report_timeout
        self.slots = Slots(slots)
        self.runs: dict[str, Run] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closing = False
        # How reports are sent: by RPC until the agent wires in its Work stream's `report`.
        self.send: Report = lambda kind, request, timeout: unary(stub, kind, request, timeout)
        self.renewals = Renewals(lambda kind, request, timeout: self.send(kind, request, timeout), self._lease_lost)

    @property
    def running(self) -> int:
        """How many handlers are running now."""
        return self.slots.in_use

    # Messages from the Work stream ---------------------------------------------------------------

    def assign(self, a: pb.Assignment) -> None:
        if self.closing:
            log.warning("ignoring assignment of task %s: the agent is stopping", a.task_id)
            return
        held = self.runs.get(a.task_id)
        if held is not None:
            if a.fencing_token <= held.token:
                log.info("ignoring repeated assignment of task %s (fencing token %d)", a.task_id, a.fencing_token)
                return
            self.revoke(held, "superseded by a newer lease")
        run = Run(
            a.task_id,
            a.fencing_token,
            json_format.MessageToDict(a.input),
            a.lease_seconds or DEFAULT_LEASE_SECONDS,
            a.timeout_seconds,
        )
        self.runs[a.task_id] = run
        run.span = tracing.tracer().start_span(
            f"task.run {a.step_id}",
            context=tracing.context_of(a.traceparent),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "ossa.task_id": a.task_id,
                "ossa.execution_id": a.execution_id,
                "ossa.step": a.step_id,
                "ossa.attempt": a.attempt,
            },
        )
        # The handler, the renewals and the reports run inside the span (and log its ids).
        attached = otel_context.attach(trace.set_span_in_context(run.span))
        try:
            log.info("task %s assigned (step %s, attempt %d)", a.task_id, a.step_id, a.attempt)
            run.context = contextvars.copy_context()
            run.work = asyncio.create_task(self._work(run), name=f"ossa-handler-{a.task_id}")
            task = asyncio.create_task(self._execute(run), name=f"ossa-task-{a.task_id}")
        finally:
            otel_context.detach(attached)
        self.renewals.add(run)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel(self, c: pb.Cancellation) -> None:
        run = self.runs.get(c.task_id)
        if run is None or (c.fencing_token and c.fencing_token != run.token):
            log.info("ignoring cancellation of task %s: no such lease here", c.task_id)
            return
        log.info("task %s cancelled by the orchestrator: %s", c.task_id, c.reason or "no reason given")
        self.revoke(run, f"cancelled by the orchestrator: {c.reason}")

    def _lease_lost(self, run: Run, reason: str) -> None:
        self.revoke(run, reason)

    def revoke(self, run: Run, reason: str, report: bool = False) -> None:
        """Stop a run's handler; with `report`, tell the orchestrator it failed (retryable)."""
        if run.revoked is None:
            run.revoked = reason
            run.report_revocation = report
        run.work.cancel()

    # One task ----------------------------------------------------------------------------------------

    async def _work(self, run: Run) -> Any:
        await self.slots.acquire()
        try:
            run.started = True
            self._on_change()
            timeout = run.timeout_seconds if run.timeout_seconds > 0 else None
            try:
                async with asyncio.timeout(timeout) as scope:
                    return await invoke(self._handler, run.input)
            except TimeoutError:
                if scope.expired():
                    raise HandlerTimeout(f"TimeoutError: handler exceeded timeout_seconds={timeout}") from None
                raise
        finally:
            self.slots.release()
            self._on_change()

    async def _execute(self, run: Run) -> None:
        try:
            try:
                value = await run.work
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
                if run.report_revocation:
                    await self._fail(run, f"agent stopped the task: {run.revoked}", retryable=True)
                else:
                    log.info("task %s stopped (%s); not reporting it", run.task_id, run.revoked)
                return
            except HandlerTimeout as err:
                await self._fail(run, str(err), retryable=True)
                return
            except Exception as err:
                permanent = isinstance(err, PermanentError)
                log.warning("task %s failed: %s", run.task_id, describe(err), exc_info=not permanent)
                await self._fail(run, describe(err), retryable=not permanent)
                return
            if run.revoked is not None:
                log.info("task %s finished after it was revoked (%s); not reporting it", run.task_id, run.revoked)
                return
            cost = 0.0
            if isinstance(value, TaskResult):
                value, cost = value.output, value.cost
            try:
                output = to_output(value)
                if not math.isfinite(cost) or cost < 0:
                    raise OutputError(f"TaskResult.cost must be a finite number of at least 0, got {cost!r}")
            except PermanentError as err:
                await self._fail(run, describe(err), retryable=False)
                return
            await self._complete(run, output, cost)
        finally:
            run.work.cancel()  # no-op unless this task itself was cancelled first
            self.renewals.discard(run)
            if self.runs.get(run.task_id) is run:
                del self.runs[run.task_id]
            if run.revoked is not None:
                run.span.set_attribute("ossa.revoked", run.revoked)
            run.span.end()

    async def _complete(self, run: Run, output: dict[str, Any], cost: float = 0.0) -> None:
        struct = struct_pb2.Struct()
        struct.update(output)
        request = pb.CompleteTaskRequest(
            task_id=run.task_id, fencing_token=run.token, output=struct, traceparent=_traceparent(run.span), cost=cost
        )
        if await self._report("CompleteTask", run, COMPLETION, request) is not None:
            # Logged only once the orchestrator acknowledged it (after its COMMIT): benchmarks/faults.py
            # reads these lines as the completions agents saw accepted.
            log.info("task %s completed (fencing token %d)", run.task_id, run.token)

    async def _fail(self, run: Run, error: str, retryable: bool) -> None:
        run.span.set_status(trace.Status(trace.StatusCode.ERROR, error))
        run.span.set_attribute("ossa.retryable", retryable)
        request = pb.FailTaskRequest(
            task_id=run.task_id,
            fencing_token=run.token,
            error=error,
            retryable=retryable,
            traceparent=_traceparent(run.span),
        )
        receipt = await self._report("FailTask", run, FAILURE, request)
        if receipt is not None:
            log.info("task %s reported failed (%s); will retry: %s", run.task_id, error, receipt.will_retry)

    async def _report(self, what: str, run: Run, kind: Kind, request: Request) -> pb.Receipt | None:
        """Report a completion/failure, retrying while the platform is unavailable; None if it failed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._report_timeout
        backoff = Backoff()
        while True:
            receipt = await self.send(kind, request, RPC_TIMEOUT_SECONDS)
            code = status(receipt)
            if code == grpc.StatusCode.OK:
                return receipt
            if code in REJECTED:
                log.warning(
                    "%s for task %s rejected (%s): the lease is no longer ours",
                    what,
                    run.task_id,
                    describe_receipt(receipt),
                )
                return None
            delay = backoff.next()
            if code not in TRANSIENT or loop.time() + delay > deadline:
                log.error("%s for task %s failed (%s); giving up", what, run.task_id, describe_receipt(receipt))
                return None
            log.warning(
                "%s for task %s failed (%s); retrying in %.1fs", what, run.task_id, describe_receipt(receipt), delay
            )
            await asyncio.sleep(delay)

    # Stopping ----------------------------------------------------------------------------------------

    async def drain(self, grace: float, force: asyncio.Event) -> None:
        """Stop taking work; let running handlers finish for `grace` seconds (or until `force`), then stop them."""
        self.closing = True
        for run in list(self.runs.values()):
            if not run.started:
                self.revoke(run, "the agent is stopping", report=True)
        pending = set(self._tasks)
        if not pending:
            return
        log.info("waiting up to %.1fs for %d task(s) to finish", grace, len(pending))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        forced = asyncio.create_task(force.wait())
        try:
            while pending and not force.is_set() and (remaining := deadline - loop.time()) > 0:
                done, _ = await asyncio.wait([*pending, forced], timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                pending -= done
        finally:
            forced.cancel()
            await asyncio.gather(forced, return_exceptions=True)
        if pending:
            log.warning("stopping %d task(s) that did not finish in time", len(pending))
            for run in list(self.runs.values()):
                self.revoke(run, "the agent stopped before the task finished", report=True)
            await asyncio.wait(pending, timeout=FINAL_REPORT_SECONDS)
        await self.abort()

    async def abort(self) -> None:
        """Cancel every task at once, reporting nothing."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.renewals.stop()


def _traceparent(span: trace.Span) -> str:
    """The run's span as W3C trace context: a report on the Work stream is traced as its child."""
    ctx = span.get_span_context()
    return tracing.traceparent(format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")) if ctx.is_valid else ""
