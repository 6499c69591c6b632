"""Watching an execution without polling: the WatchExecution stream and GetExecution's long poll.

A watcher registers with the EventHub (orchestrator_svc/events.py) before its first read, so a
change committed after that read is never missed: this process's commits notify it at once
(Effects.apply / Effects.leased), other processes' commits through the batch message on Redis
(the hub announces which executions are watched here, so only those are added to it). On a
notification the watcher re-reads the execution and its tasks from PostgreSQL and sends what
changed; it also re-reads every REREAD_SECONDS, which bounds the delay of a lost message.

The long poll (`GET /api/v1/executions/{id}?wait=30s&status_not=running`) compares with the
status the client already has (`status_not`), not with the status when the call arrives, so a
change between two polls is never missed; without `status_not` it waits for the status to differ
from the one it reads first.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from orchestrator_svc import convert
from orchestrator_svc.engine import FINAL, ExecutionEngine
from orchestrator_svc.events import EventHub
from orchestrator_svc.leases import TASK_COLUMNS
from orchestrator_svc.outcome import Row
from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_runtime import validate
from ossa_runtime.errors import InvalidArgument

REREAD_SECONDS = 1.0  # re-read this often even without a notification (a lost pub/sub message)
ANNOUNCE_SECONDS = 5.0  # repeat the watch announcement (events.WATCH_TTL_SECONDS is longer)
MAX_WAIT_SECONDS = 60.0
_WAIT = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}
# What makes a task "changed" for watchers (a renewal moving lease_expires_at is not a change).
_TASK_KEYS = ("status", "attempt", "agent_id", "error", "started_at", "completed_at", "target_agent_id",
              "routing_note")  # fmt: skip
_EXECUTION_KEYS = ("status", "error", "retry_count", "completed_at", "results")


def parse_wait(raw: str) -> float:
    """'30s', '500ms', '1m' or plain seconds ('30') -> seconds, at most MAX_WAIT_SECONDS."""
    match = _WAIT.match(raw.strip())
    if match is None:
        raise InvalidArgument("wait", f"must be a duration such as 30s or 500ms, got {raw[:32]!r}")
    seconds = float(match.group(1)) * _UNIT[match.group(2)]
    if seconds > MAX_WAIT_SECONDS:
        raise InvalidArgument("wait", f"must be at most {MAX_WAIT_SECONDS:g}s, got {raw[:32]!r}")
    return seconds


def _status_name(value: int) -> str:
    return pb.ExecutionStatus.Value.Name(value)  # type: ignore[arg-type]


class _Subscription:
    """An EventHub registration for one execution: `changed` is set by every notification."""

    def __init__(self, hub: EventHub, execution_id: str) -> None:
        self.hub = hub
        self.execution_id = execution_id
        self.changed = asyncio.Event()
        self._remove = hub.on_change(execution_id, self.changed.set)
        self._announced = 0.0

    async def announce(self) -> None:
        """Announce (again, when due) that this process watches the execution."""
        now = time.monotonic()
        if now - self._announced >= ANNOUNCE_SECONDS:
            self._announced = now
            await self.hub.announce_watch(self.execution_id)

    async def next(self, seconds: float) -> None:
        """Wait for a notification or `seconds`, then arm for the next one (before the caller re-reads)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(seconds, 0.0)):
                await self.changed.wait()
        self.changed.clear()
        await self.announce()

    def close(self) -> None:
        self._remove()


class Watcher:
    def __init__(self, engine: ExecutionEngine, hub: EventHub) -> None:
        self.engine = engine
        self.hub = hub

    async def _tasks(self, execution_id: str) -> list[Row]:
        rows: list[Row] = await self.engine.pool.fetch(
            f"SELECT {TASK_COLUMNS} FROM tasks t WHERE execution_id = $1 ORDER BY created_at, id", execution_id
        )
        return rows

    async def watch(self, request: pb.WatchExecutionRequest) -> AsyncIterator[pb.WatchExecutionResponse]:
        """The current state, then one message per change, until a final status."""
        execution_id = validate.parse_uuid(request.execution_id, "execution_id")
        subscription = _Subscription(self.hub, execution_id)
        try:
            await subscription.announce()
            execution = await self.engine.get(execution_id)  # NotFound before anything is sent
            tasks = await self._tasks(execution_id)
            seen = {t["id"]: _task_key(t) for t in tasks}
            shown = _execution_key(execution)
            yield _message(execution, tasks, initial=True)
            while execution["status"] not in FINAL:
                await subscription.next(REREAD_SECONDS)
                execution = await self.engine.get(execution_id)
                tasks = await self._tasks(execution_id)
                changed = [t for t in tasks if seen.get(t["id"]) != _task_key(t)]
                if not changed and _execution_key(execution) == shown:
                    continue
                seen.update((t["id"], _task_key(t)) for t in changed)
                shown = _execution_key(execution)
                yield _message(execution, changed, initial=False)
        finally:
            subscription.close()

    async def long_poll(self, request: pb.GetExecutionRequest) -> Row:
        """The execution once its status differs from `status_not` (or from the first read), or when
        `wait` is over (then unchanged)."""
        execution_id = validate.parse_uuid(request.execution_id, "execution_id")
        if not request.wait:
            raise InvalidArgument("wait", "is required with status_not (e.g. wait=30s)")
        deadline = time.monotonic() + parse_wait(request.wait)
        subscription = _Subscription(self.hub, execution_id)
        try:
            await subscription.announce()
            execution = await self.engine.get(execution_id)
            reference = _status_name(request.status_not) if request.status_not else execution["status"]
            while execution["status"] == reference and execution["status"] not in FINAL:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                await subscription.next(min(left, REREAD_SECONDS))
                execution = await self.engine.get(execution_id)
            return execution
        finally:
            subscription.close()


def _task_key(row: Row) -> tuple[Any, ...]:
    return tuple(row[k] for k in _TASK_KEYS)


def _execution_key(row: Row) -> tuple[Any, ...]:
    return tuple(row[k] for k in _EXECUTION_KEYS)


def _message(execution: Row, tasks: list[Row], *, initial: bool) -> pb.WatchExecutionResponse:
    return pb.WatchExecutionResponse(
        execution=convert.execution(execution), tasks=[convert.task(t) for t in tasks], initial=initial
    )
