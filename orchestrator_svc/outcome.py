"""What a committed change did, for the metrics, the Redis mirror, the agents' streams and traces.

One `Outcome` may describe a whole batch (several executions and tasks); `merge` adds another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

Row: TypeAlias = Any  # an asyncpg.Record or a dict with the same keys


@dataclass(frozen=True)
class Revoked:
    """A lease taken away from an agent (its task was cancelled or its execution failed)."""

    task_id: str
    agent_id: str
    fencing_token: int
    reason: str


@dataclass(frozen=True)
class TaskEnd:
    """A task attempt and/or a task that ended, as the metrics count them (orchestrator_svc.telemetry)."""

    capability: str
    attempt: str | None  # how the attempt ended: completed, failed, expired, cancelled; None: never leased
    seconds: float | None  # the attempt's claim -> end
    final: str | None  # the task's final status (completed or failed); None: it went back to the queue
    task_id: str = ""
    token: int = 0  # the attempt's fencing token (it names the attempt, for its trace span)
    agent_id: str = ""  # who held the lease (its slot is free again)


@dataclass(frozen=True)
class Released:
    """A lease that ended without completing: the task went back to the queue or failed."""

    task_id: str
    execution_id: str
    step: str
    agent_id: str | None
    will_retry: bool
    error: str
    end: TaskEnd | None = None


@dataclass
class Outcome:
    executions: list[Row] = field(default_factory=list)  # executions as they are after the change
    closed: list[Row] = field(default_factory=list)  # those this change moved to a final status
    created: list[Row] = field(default_factory=list)  # tasks queued
    revoked: list[Revoked] = field(default_factory=list)
    released: list[Released] = field(default_factory=list)
    ended: list[TaskEnd] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)  # task ids completed
    started: list[tuple[Row, list[str]]] = field(default_factory=list)  # new executions and their step ids

    @property
    def execution(self) -> Row | None:
        """The (last) execution changed: for changes of one execution."""
        return self.executions[-1] if self.executions else None

    def merge(self, other: Outcome) -> Outcome:
        self.executions += other.executions
        self.closed += other.closed
        self.created += other.created
        self.revoked += other.revoked
        self.released += other.released
        self.ended += other.ended
        self.completed += other.completed
        self.started += other.started
        return self
