"""The group commits of this process: starts, completions, failures and renewals.

Every caller (a unary RPC or a report on a Work stream) submits one item and awaits its result;
items that arrive while a batch is being committed go into the next one (orchestrator_svc.batcher).
After each COMMIT the batch's effects are applied once (orchestrator_svc.effects), then every
caller is answered: no acknowledgement ever precedes its commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

from orchestrator_svc.batcher import GroupCommit
from orchestrator_svc.completions import Completed, Completer, Completion
from orchestrator_svc.effects import Effects
from orchestrator_svc.engine import ExecutionEngine, Failure
from orchestrator_svc.leases import LeaseStore, Report
from orchestrator_svc.outcome import Outcome
from orchestrator_svc.starts import Started, StartItem, start_many
from orchestrator_svc.workflows import WorkflowStore

__all__ = ["Batches", "Completed", "Completion", "Failure", "Report", "StartItem", "Started"]


class Batches:
    def __init__(self, pool: asyncpg.Pool, workflows: WorkflowStore, engine: ExecutionEngine, leases: LeaseStore,
                 effects: Effects) -> None:  # fmt: skip
        self.pool = pool
        self.engine = engine
        self.leases = leases
        self.effects = effects
        self.completer = Completer(pool, workflows, leases.late)
        self.starts: GroupCommit[StartItem, Started] = GroupCommit("start", self._start)
        self.completions: GroupCommit[Completion, Completed] = GroupCommit("complete", self._complete)
        self.failures: GroupCommit[Failure, bool] = GroupCommit("fail", self._fail)
        self.renewals: GroupCommit[Report, tuple[datetime, str]] = GroupCommit("renew", self._renew)

    async def _start(self, items: list[StartItem]) -> list[Started | BaseException]:
        results = await start_many(self.pool, items)
        self.effects.apply(_start_outcome(items, results))
        return results

    async def start_all(self, items: list[StartItem]) -> list[Started]:
        """Start these executions together or none (StartExecutions), in one statement of their own."""
        results = await start_many(self.pool, items, atomic=True)
        started = [r for r in results if isinstance(r, Started)]
        self.effects.apply(_start_outcome(items, started))
        return started

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

    async def stop(self) -> None:
        for batch in (self.starts, self.completions, self.failures, self.renewals):
            await batch.stop()


def _start_outcome(items: list[StartItem], results: Sequence[Started | BaseException]) -> Outcome:
    outcome = Outcome()
    for item, result in zip(items, results, strict=True):
        if isinstance(result, Started) and result.created:
            outcome.started.append((result.execution, [s.id for s in item.definition.steps]))
            outcome.created += result.tasks
    return outcome
