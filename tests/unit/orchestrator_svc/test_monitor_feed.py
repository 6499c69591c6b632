"""orchestrator_svc/monitor_feed.py with fakes: what one interval sends to the monitoring service."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator_svc import monitor_feed
from orchestrator_svc.monitor_feed import DEPTH_PREFIX, DURATION, FINISHED, MonitorFeed
from orchestrator_svc.outcome import Outcome, TaskEnd
from ossa.monitoring.v1 import monitoring_pb2 as pb


class FakeRedis:
    def __init__(self) -> None:
        self.keys: set[str] = set()

    async def set(self, key: str, value: str, *, nx: bool, ex: int) -> bool:
        assert nx and ex >= 60
        if key in self.keys:
            return False
        self.keys.add(key)
        return True


class FakePool:
    def __init__(self, rows: list[dict[str, int]]) -> None:
        self.rows = rows

    async def fetch(self, sql: str) -> list[dict[str, int]]:
        assert "status = 'pending'" in sql
        return self.rows


def feed(
    sent: list[Sequence[pb.MetricPoint]], redis: Any = None, rows: list[dict[str, int]] | None = None
) -> MonitorFeed:
    async def ingest(points: Sequence[pb.MetricPoint]) -> None:
        sent.append(points)

    return MonitorFeed(FakePool(rows or []), redis or FakeRedis(), ingest, 10.0)  # type: ignore[arg-type]


def ended(*ends: TaskEnd) -> Outcome:
    return Outcome(ended=list(ends))


async def test_one_interval_sends_throughput_durations_and_queue_depth() -> None:
    sent: list[Sequence[pb.MetricPoint]] = []
    f = feed(sent, rows=[{"priority": 5, "n": 3}, {"priority": 9, "n": 1}])
    f.observe(ended(TaskEnd("c", "completed", 0.5, "completed"), TaskEnd("c", "expired", 30.0, None)))
    f.observe(ended(TaskEnd("c", None, None, "failed")))  # cancelled before it was ever leased
    assert await f.run() == 2 + 1 + 10
    (points,) = sent
    by_name: dict[str, list[float]] = {}
    for p in points:
        by_name.setdefault(p.name, []).append(p.value)
        assert p.timestamp.seconds > 0 and not p.agent_id
    assert sorted(by_name[DURATION]) == [0.5, 30.0]
    assert by_name[FINISHED] == [2.0]
    assert by_name[f"{DEPTH_PREFIX}5"] == [3.0] and by_name[f"{DEPTH_PREFIX}9"] == [1.0]
    assert by_name[f"{DEPTH_PREFIX}1"] == [0.0] and len([n for n in by_name if n.startswith(DEPTH_PREFIX)]) == 10
    # Nothing new: only the queue depth of the next interval, and only once per interval.
    await f.run()
    assert len(sent) == 1 or all(p.name.startswith(DEPTH_PREFIX) for p in sent[1])


async def test_one_process_per_interval_sends_the_queue_depth() -> None:
    redis = FakeRedis()
    first: list[Sequence[pb.MetricPoint]] = []
    second: list[Sequence[pb.MetricPoint]] = []
    a, b = feed(first, redis), feed(second, redis)
    await a.run()
    await b.run()
    assert len(first) == 1 and len(first[0]) == 10
    assert second == []  # nothing counted and the interval already claimed: nothing sent


async def test_durations_are_sampled_beyond_the_cap(monkeypatch: Any) -> None:
    monkeypatch.setattr(monitor_feed, "MAX_DURATIONS", 5)
    sent: list[Sequence[pb.MetricPoint]] = []
    f = feed(sent, redis=FakeRedis())
    for i in range(50):
        f.observe(ended(TaskEnd("c", "completed", float(i), "completed")))
    points = f.take(0.0)
    assert len([p for p in points if p.name == DURATION]) == 5
    assert [p.value for p in points if p.name == FINISHED] == [50.0]
    assert f.take(0.0) == []
