"""Ingest: validate a batch of points, refuse those of unregistered agents, buffer the rest."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from monitoring_svc import validation
from monitoring_svc.buckets import MICROS
from monitoring_svc.buffer import BufferFull, MetricsBuffer
from monitoring_svc.flush import now_micros
from monitoring_svc.store import MetricsStore
from monitoring_svc.validation import Rejection
from ossa.monitoring.v1 import monitoring_pb2 as pb
from ossa_runtime.errors import Unavailable

MAX_REJECTIONS = 100  # listed in a reply; all are counted


class KnownAgents:
    """Registered agent ids, remembered for `ttl` seconds (unknown ids are asked again each time).

    An agent deleted meanwhile still passes here; the flusher's INSERT then drops its points.
    """

    def __init__(self, store: MetricsStore, ttl: float = 60.0, max_size: int = 100_000) -> None:
        self.store = store
        self.ttl = ttl
        self.max_size = max_size
        self._until: dict[str, float] = {}

    async def unknown(self, agent_ids: set[str]) -> set[str]:
        now = time.monotonic()
        ask = [a for a in agent_ids if self._until.get(a, 0.0) < now]
        if not ask:
            return set()
        unknown = await self.store.unknown_agents(ask)
        if len(self._until) + len(ask) > self.max_size:
            self._until.clear()
        for agent_id in ask:
            if agent_id not in unknown:
                self._until[agent_id] = now + self.ttl
        return unknown


@dataclass
class Tally:
    """What a request (or a whole stream) delivered."""

    accepted: int = 0
    rejected: int = 0
    seen: int = 0
    rejections: list[Rejection] = field(default_factory=list)

    def reject(self, rejections: Sequence[Rejection]) -> None:
        self.rejected += len(rejections)
        room = MAX_REJECTIONS - len(self.rejections)
        self.rejections.extend(sorted(rejections, key=lambda r: r.index)[: max(room, 0)])

    def messages(self) -> list[pb.PointRejection]:
        return [
            pb.PointRejection(index=min(r.index, 2**31 - 1), field=r.field, reason=r.reason) for r in self.rejections
        ]


class Ingest:
    def __init__(
        self,
        buffer: MetricsBuffer,
        agents: KnownAgents,
        retention_hours: int,
        batch: int,
        on_full_batch: Callable[[], None],
    ) -> None:
        self.buffer = buffer
        self.agents = agents
        self.retention = retention_hours * 3600 * MICROS
        self.batch = batch
        self.on_full_batch = on_full_batch

    async def accept(self, points: Sequence[pb.MetricPoint], tally: Tally, where: str = "") -> None:
        """Buffer the acceptable points and count everything in `tally` (InvalidArgument if any
        point is malformed: then nothing of this batch is buffered)."""
        now = now_micros()
        good, rejected = validation.parse_points(points, now, now - self.retention, offset=tally.seen, where=where)
        unknown = await self.agents.unknown({p.agent_id for p in good if p.agent_id is not None})
        if unknown:
            rejected += [
                Rejection(p.index, f"{p.field}.agent_id", f"agent {p.agent_id} is not registered")
                for p in good
                if p.agent_id in unknown
            ]
            good = [p for p in good if p.agent_id not in unknown]
        try:
            length = await self.buffer.push(good)
        except BufferFull as err:
            raise Unavailable(f"{err}; try again later") from None
        if length >= self.batch:
            self.on_full_batch()
        tally.seen += len(points)
        tally.accepted += len(good)
        tally.reject(rejected)
