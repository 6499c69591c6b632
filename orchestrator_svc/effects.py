"""After a commit: what this process learns at once, and what Redis learns a moment later.

`apply(outcome)` is synchronous and cheap, called right after COMMIT and before the caller is
answered: metrics, observers (the router, the console's feed), freed slots and new work for this
process's dispatcher, cancellations for its streams. Everything that needs Redis or a trace read
(the mirror of the queue and leases, the announcement to other orchestrator processes, trace spans)
is queued and written by one background task, many commits per pipeline, off the critical path.
PostgreSQL has the truth: the mirror is rebuilt from it when it drifts (QueueMirror.check).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from orchestrator_svc import events, mirror, telemetry, traces
from orchestrator_svc.dispatch import Dispatcher, agent_wake_key
from orchestrator_svc.drainer import Drainer
from orchestrator_svc.events import EventHub
from orchestrator_svc.outcome import Outcome
from ossa_runtime import tracing

log = logging.getLogger("ossa.orchestrator.effects")
LINGER_SECONDS = 0.002  # gathers the writes of several commits into one script call and one publish
MAX_PENDING = 100_000  # queued mirror writes beyond this are dropped (check() rebuilds the mirror)


@dataclass
class _Later:
    outcomes: list[Outcome] = field(default_factory=list)
    leased: list[Any] = field(default_factory=list)
    renewed: list[tuple[str, str, float]] = field(default_factory=list)  # (task id, agent id, seconds)
    ready: set[str] = field(default_factory=set)  # announced apart from an outcome
    size: int = 0


class Effects:
    def __init__(self, queue_mirror: mirror.QueueMirror, hub: EventHub, pool: asyncpg.Pool,
                 dispatcher: Dispatcher) -> None:  # fmt: skip
        self.mirror = queue_mirror
        self.hub = hub
        self.pool = pool
        self.dispatcher = dispatcher
        # Told of every committed change: the router (new capability_query tasks) and the console's
        # series (monitor_feed.py).
        self.observers: list[Callable[[Outcome], None]] = []
        self._later = _Later()
        # No caller waits for these writes: each drain lingers, the first after a wake too.
        self._writer = Drainer("after-commit", self._drain, lambda: bool(self._later.size), LINGER_SECONDS,
                               linger_first=True)  # fmt: skip

    def apply(self, outcome: Outcome) -> None:
        telemetry.record(outcome)
        for observe in self.observers:
            observe(outcome)
        for end in outcome.ended:
            if end.agent_id and end.task_id and end.attempt is not None:
                self.dispatcher.released(end.agent_id, end.task_id)
        self.hub.revoke_local(outcome.revoked)
        self.dispatcher.wake(_ready_keys(outcome))
        if self.hub.watching:  # orchestrator_svc/watch.py
            self.hub.changed_local(_execution_ids(outcome))
        self._queue(outcome=outcome)

    def leased(self, rows: list[Any]) -> None:
        """Leases handed out by this process (the mirror shows them)."""
        if self.hub.watching:
            self.hub.changed_local({r["execution_id"] for r in rows})
        self._queue(leased=rows)

    def renewed(self, task_id: str, agent_id: str, seconds: float) -> None:
        self._queue(renewed=(task_id, agent_id, seconds))

    def announce(self, ready: set[str]) -> None:
        """Work for these capabilities / agents may be claimable: wake this process's and the others'."""
        self.dispatcher.wake(ready)
        self._later.ready |= ready
        self._queue()

    def _queue(self, outcome: Outcome | None = None, leased: list[Any] | None = None,
               renewed: tuple[str, str, float] | None = None) -> None:  # fmt: skip
        later = self._later
        if later.size >= MAX_PENDING:
            if not self.mirror.dirty:  # once per overflow: the mirror check rebuilds what was dropped
                log.warning(
                    "after-commit writes dropped: Redis is too far behind", extra={"metadata": {"queued": later.size}}
                )
            self.mirror.dirty = True
            return
        if outcome is not None:
            later.outcomes.append(outcome)
        if leased:
            later.leased += leased
        if renewed is not None:
            later.renewed.append(renewed)
        later.size += 1
        self._writer.kick()

    async def _drain(self) -> None:
        later, self._later = self._later, _Later()
        try:
            await self._write(later)
        except Exception as err:  # never lose the loop: the mirror is repaired by check()
            self.mirror.dirty = True
            log.warning("after-commit writes failed", extra={"metadata": {"error": str(err)}})

    async def _write(self, later: _Later) -> None:
        """The mirror's writes and one message to the other processes, in one script call. A freed
        slot is announced only for agents with no stream here: an agent's leases end where its
        stream is, as a rule, and a process that also holds one of its streams (a reconnect landed
        elsewhere) learns of the slot from its next refresh (Dispatcher.refresh, every second)."""
        requeued = [r.task_id for o in later.outcomes for r in o.released if r.will_retry]
        back = await self.mirror.pending_rows(requeued) if requeued else []
        batch = mirror.Batch()
        for outcome in later.outcomes:
            _mirror_outcome(batch, outcome)
        batch.queued(back)
        batch.leased(later.leased)
        for task_id, agent_id, seconds in later.renewed:
            batch.renewed(task_id, agent_id, seconds)
        here = self.dispatcher.agents
        ends = [e for o in later.outcomes for e in o.ended]
        message = self.hub.message(
            later.ready | {k for o in later.outcomes for k in _ready_keys(o)},
            {(e.agent_id, e.task_id) for e in ends if e.agent_id and e.attempt and e.agent_id not in here},
            [r for o in later.outcomes for r in o.revoked],
            self.hub.watched_elsewhere(_changed(later)),
        )
        # One Redis call for both (a redis-py command costs ~0.1 ms of this process's CPU); if it
        # failed, the announcement still goes out on its own: other processes wake sooner than their tick.
        if not await self.mirror.apply(batch, (events.CHANNEL, message) if message else None) and message:
            await self.hub.send(message)
        if tracing.exporting():
            for outcome in later.outcomes:
                await traces.record(self.pool, outcome)

    async def stop(self) -> None:
        """Write what is queued, then stop (idempotent)."""
        await self._writer.stop()


def _ready_keys(outcome: Outcome) -> set[str]:
    """Capabilities (or target agents) of tasks queued, new or back for a retry. Freed slots wake
    their own agent (Dispatcher.released), not every agent of a capability."""
    out = {r["capability"] for r in outcome.created if r["capability"]}
    out |= {agent_wake_key(r["target_agent_id"]) for r in outcome.created if r.get("target_agent_id")}
    out |= {r.end.capability for r in outcome.released if r.will_retry and r.end is not None and r.end.capability}
    return out


def _execution_ids(outcome: Outcome) -> set[str]:
    """Executions whose status or tasks the change touched (for watchers)."""
    out = {e["id"] for e in outcome.executions} | {e["id"] for e, _ in outcome.started}
    out |= {r["execution_id"] for r in outcome.created}
    out |= {r.execution_id for r in outcome.released}
    return out


def _changed(later: _Later) -> Iterator[str]:
    """Every execution a drained batch touched (lazily: only read when some are watched elsewhere)."""
    for outcome in later.outcomes:
        yield from _execution_ids(outcome)
    for row in later.leased:
        yield row["execution_id"]


def _mirror_outcome(batch: mirror.Batch, outcome: Outcome) -> None:
    for execution, steps in outcome.started:
        batch.execution(execution, steps)
    for task_id in outcome.completed:
        batch.ended(task_id, "completed")
    for released in outcome.released:
        if released.will_retry:
            batch.unlocked(released.task_id)
        else:
            batch.ended(released.task_id, "failed")
    for revoked in outcome.revoked:
        batch.ended(revoked.task_id, "failed")
    batch.queued(outcome.created)
    for execution in outcome.executions:
        batch.execution(execution)
