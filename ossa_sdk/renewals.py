"""Lease renewal: one loop per agent renews every lease it holds.

Each run is due every `lease_seconds / 3`; the loop sends the renewals due (or due within a fifth
of their period) together at once (one message on a batched Work stream) and handles each
receipt: accepted, the run is due again a period later; rejected (the lease is gone), the run is
revoked; anything else, it is retried after `min(period, RETRY_SECONDS)`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import TYPE_CHECKING

import grpc

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_sdk.receipts import REJECTED, RENEWAL, Report, describe, status

if TYPE_CHECKING:
    from ossa_sdk.tasks import Run

log = logging.getLogger("ossa.sdk")

EARLY = 0.2  # a renewal goes out up to this fraction of its period early, with others due
RETRY_SECONDS = 1.0  # a renewal that failed for another reason than a lost lease is tried again this soon


def period(run: Run) -> float:
    return run.lease_seconds / 3


class Renewals:
    """Renews the leases of the runs added until they are discarded; `lost(run, why)` when one is gone."""

    def __init__(self, send: Report, lost: Callable[[Run, str], None]) -> None:
        self._send = send
        self._lost = lost
        self._due: dict[Run, float] = {}  # run -> when its next renewal is due (loop time)
        self._inflight: set[Run] = set()
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._settling: set[asyncio.Task[None]] = set()
        self.rounds = 0  # how many times due renewals were sent together

    def add(self, run: Run) -> None:
        self._due[run] = asyncio.get_running_loop().time() + period(run)
        self._wake.set()
        if self._loop is None or self._loop.done():
            self._loop = asyncio.create_task(self._run(), name="ossa-renewals")

    def discard(self, run: Run) -> None:
        """Stop renewing the run's lease (its result was reported, or it was revoked)."""
        self._due.pop(run, None)

    def __contains__(self, run: Run) -> bool:
        return run in self._due

    async def stop(self) -> None:
        await asyncio.sleep(0)  # renewals just sent start awaiting their answers: cancelling ends those too
        tasks = [*self._settling, *([self._loop] if self._loop is not None else [])]
        self._loop = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            now = loop.time()
            waiting = {run: at for run, at in self._due.items() if run not in self._inflight}
            # Due, or nearly: renewing a little early lets leases taken close together renew together.
            due = [run for run, at in waiting.items() if at - EARLY * period(run) <= now]
            if due:
                self._renew(due)
                continue
            delay = min(waiting.values()) - now if waiting else None
            with suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    def _renew(self, runs: list[Run]) -> None:
        """Send every due renewal now (queued together), then settle each on its own receipt."""
        self.rounds += 1
        for run in runs:
            self._inflight.add(run)
            request = pb.RenewLeaseRequest(task_id=run.task_id, fencing_token=run.token)
            try:
                answer = self._send(RENEWAL, request, max(period(run), 1.0))
            except Exception as err:  # a bug: do not stop renewing the others
                log.error("could not renew the lease on task %s: %s", run.task_id, err, exc_info=True)
                self._inflight.discard(run)
                self._retry(run)
                continue
            # In the run's context, so an RPC renewal is traced as a child of its task.run span.
            task = asyncio.create_task(self._settle(run, answer), context=run.context.copy())
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)

    async def _settle(self, run: Run, answer: Awaitable[pb.Receipt]) -> None:
        try:
            receipt = await answer
        except Exception as err:
            log.warning("could not renew the lease on task %s (%s); will retry", run.task_id, err)
            self._retry(run)
            return
        finally:
            self._inflight.discard(run)
            self._wake.set()
        if run not in self._due:
            return  # reported or revoked meanwhile
        code = status(receipt)
        if code == grpc.StatusCode.OK:
            run.renewals += 1
            self._due[run] = asyncio.get_running_loop().time() + period(run)
        elif code in REJECTED:
            log.warning("lost the lease on task %s (%s); stopping it", run.task_id, describe(receipt))
            del self._due[run]
            self._lost(run, f"lease lost: {describe(receipt)}")
        else:
            log.warning("could not renew the lease on task %s (%s); will retry", run.task_id, describe(receipt))
            self._retry(run)

    def _retry(self, run: Run) -> None:
        if run in self._due:
            self._due[run] = asyncio.get_running_loop().time() + min(period(run), RETRY_SECONDS)
