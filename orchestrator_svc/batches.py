"""The group commits of this process: starts, completions, failures and renewals.

Every caller (a unary RPC or a report on a Work stream) submits one item and awaits its result;
items that arrive while a batch is being committed go into the next one (orchestrator_svc.batcher).
After each COMMIT the batch's effects are applied once (orchestrator_svc.effects), then every
caller is answered: no acknowledgement ever precedes its commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

from orchestrator_svc import starts
from orchestrator_svc.batcher import GroupCommit
from orchestrator_svc.completions import Completed, Completer, Completion
from orchestrator_svc.dispatch import Dispatcher
from orchestrator_svc.effects import Effects
from orchestrator_svc.engine import ExecutionEngine, Failure
from orchestrator_svc.leases import LeaseStore, Report
from orchestrator_svc.outcome import Outcome
from orchestrator_svc.starts import Started, StartItem
from orchestrator_svc.workflows import WorkflowStore

log = logging.getLogger("ossa.orchestrator")
__all__ = ["Batches", "Completed", "Completion", "Failure", "Report", "StartItem", "Started"]


class Batches:
    def __init__(self, pool: asyncpg.Pool, workflows: WorkflowStore, engine: ExecutionEngine, leases: LeaseStore,
                 effects: Effects, dispatcher: Dispatcher, quarantine: float,
                 planned: asyncpg.Pool | None = None, linger: float = 0.0) -> None:  # fmt: skip
        self.pool = pool
        self.planned = planned or pool  # the start statement's connections (ossa_runtime/db.py, GENERIC_PLANS)
        self.dispatcher = dispatcher
        self.quarantine = quarantine
        self.engine = engine
        self.leases = leases
        self.effects = effects
        self.completer = Completer(pool, workflows, leases.late, dispatcher.steps)
        self.starts: GroupCommit[StartItem, Started] = GroupCommit("start", self._start, linger=linger)
        self.completions: GroupCommit[Completion, Completed] = GroupCommit("complete", self._complete, linger=linger)
        self.failures: GroupCommit[Failure, bool] = GroupCommit("fail", self._fail, linger=linger)
        self.renewals: GroupCommit[Report, tuple[datetime, str]] = GroupCommit("renew", self._renew, linger=linger)
        self._background: set[asyncio.Task[None]] = set()

    async def _start(self, items: list[StartItem]) -> list[Started | BaseException]:
        return await self._started(items, atomic=False)

    async def start_all(self, items: list[StartItem]) -> list[Started]:
        """Start these executions together or none (StartExecutions), in one statement of their own."""
        return [r for r in await self._started(items, atomic=True) if isinstance(r, Started)]

    async def _started(self, items: list[StartItem], atomic: bool) -> list[Started | BaseException]:
        plans = [starts.plan(item) for item in items]
        reserved = self.dispatcher.reserve([t for p in plans for t in p.tasks])
        try:
            results = await starts.start_many(self.planned, plans, reserved, self.quarantine, atomic)
        except BaseException:
            self.dispatcher.settle(reserved, [])
            raise
        leased = [row for r in results if isinstance(r, Started) for row in r.leased]
        self.dispatcher.settle(reserved, leased)
        self.effects.apply(_start_outcome(items, results))
        if leased:
            self.effects.leased(leased)
        return results

    async def _complete(self, items: list[Completion]) -> list[Completed | BaseException]:
        results, outcome = await self.completer.complete(items)
        self.effects.apply(outcome)
        return results

    async def _fail(self, items: list[Failure]) -> list[bool | BaseException]:
        results, outcome = await self.engine.fail(items)
        self.effects.apply(outcome)
        return results

    async def _renew(self, items: list[Report]) -> list[tuple[datetime, str] | BaseException]:
        results = await self.leases.renew(items)
        now = datetime.now(UTC)
        for item, result in zip(items, results, strict=True):
            if isinstance(result, tuple):
                expires, holder = result
                self.effects.renewed(item.task_id, holder, (expires - now).total_seconds())
        return results

    def undeliver(self, leases: list[tuple[str, int]], agent_id: str) -> None:
        """A stream closed with these leases still unsent: put them back in the queue (in the background)."""
        task = asyncio.create_task(self._undeliver(leases, agent_id), name="undeliver")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _undeliver(self, leases: list[tuple[str, int]], agent_id: str) -> None:
        try:
            rows = await self.leases.undeliver(leases)
        except Exception as err:  # they expire and are retried like any lost lease
            log.warning("could not requeue undelivered leases", extra={"metadata": {"error": str(err)}})
            return
        for task_id, _ in leases:
            self.dispatcher.released(agent_id, task_id)
        self.effects.apply(Outcome(created=[dict(r) for r in rows]))

    async def stop(self) -> None:
        await asyncio.gather(*self._background, return_exceptions=True)
        for batch in (self.starts, self.completions, self.failures, self.renewals):
            await batch.stop()


def _start_outcome(items: list[StartItem], results: Sequence[Started | BaseException]) -> Outcome:
    outcome = Outcome()
    for item, result in zip(items, results, strict=True):
        if isinstance(result, Started) and result.created:
            outcome.started.append((result.execution, [s.id for s in item.definition.steps]))
            outcome.created += result.tasks
    return outcome
