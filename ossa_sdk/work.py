"""The Work stream: tell the orchestrator who this agent is and how many slots it has; receive leases."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_sdk.backoff import Backoff
from ossa_sdk.tasks import TaskPool

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
    ) -> None:
        self._stub = stub
        self._pool = pool
        self._capabilities = list(capabilities)
        self._agent_id_source = agent_id
        self._new_backoff = backoff
        self._call: Any = None
        self._agent_id = ""
        self._write_lock = asyncio.Lock()
        self._reopen = False
        self.sessions = 0  # how many times the stream was opened

    def _request(self) -> pb.WorkRequest:
        return pb.WorkRequest(agent_id=self._agent_id, capabilities=self._capabilities, slots=self._pool.slots.capacity)

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
                    await call.write(self._request())
                self._call = call
                self.sessions += 1
                log.debug("work stream open (agent %s, %d slots)", self._agent_id, self._pool.slots.capacity)
                while (message := await call.read()) is not EOF:
                    backoff.reset()
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

    def _dispatch(self, message: pb.WorkResponse) -> None:
        kind = message.WhichOneof("kind")
        if kind == "assignment":
            self._pool.assign(message.assignment)
        elif kind == "cancellation":
            self._pool.cancel(message.cancellation)
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
