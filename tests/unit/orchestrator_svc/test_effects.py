"""The after-commit writer: the mirror's writes and the announcement to other processes go out in one
Redis call; when that call fails, the announcement is still sent on its own."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from orchestrator_svc import events
from orchestrator_svc.effects import Effects
from orchestrator_svc.events import EventHub
from orchestrator_svc.mirror import Batch
from orchestrator_svc.outcome import Outcome


class FakeMirror:
    def __init__(self, ok: bool) -> None:
        self.ok = ok
        self.dirty = False
        self.calls: list[tuple[list[Any], tuple[str, str] | None]] = []

    async def apply(self, batch: Batch, announce: tuple[str, str] | None = None) -> bool:
        self.calls.append((batch.ops, announce))
        return self.ok


class FakeRedis:
    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []

    async def publish(self, channel: str, data: str) -> None:
        self.published.append((channel, data))


class FakeDispatcher:
    agents: dict[str, Any] = {}

    def wake(self, keys: Any) -> None:
        pass

    def released(self, agent_id: str, task_id: str) -> None:
        pass


def _effects(ok: bool) -> tuple[Effects, FakeMirror, FakeRedis]:
    mirror, redis, dispatcher = FakeMirror(ok), FakeRedis(), FakeDispatcher()
    hub = EventHub(redis, dispatcher)  # type: ignore[arg-type]
    return Effects(mirror, hub, None, dispatcher), mirror, redis  # type: ignore[arg-type]


def _queued(capability: str) -> Outcome:
    row = {"id": "t1", "execution_id": "e1", "name": "s", "status": "pending", "priority": 5,
           "capability": capability, "agent_type": None, "target_agent_id": None,
           "enqueued_at": datetime.now(UTC)}  # fmt: skip
    return Outcome(created=[row])


async def test_mirror_writes_and_announcement_share_one_call() -> None:
    effects, mirror, redis = _effects(ok=True)
    effects.apply(_queued("summarize"))
    await effects.stop()
    assert len(mirror.calls) == 1
    ops, announce = mirror.calls[0]
    assert [op[0] for op in ops] == ["q"]
    assert announce is not None and announce[0] == events.CHANNEL
    assert json.loads(announce[1])["ready"] == ["summarize"]
    assert redis.published == []  # nothing sent apart


async def test_a_failed_call_still_sends_the_announcement() -> None:
    effects, mirror, redis = _effects(ok=False)
    effects.apply(_queued("summarize"))
    await effects.stop()
    assert len(mirror.calls) == 1
    assert [(channel, json.loads(data)["ready"]) for channel, data in redis.published] == [
        (events.CHANNEL, ["summarize"])
    ]


async def test_nothing_to_announce_sends_no_message() -> None:
    effects, mirror, redis = _effects(ok=False)
    effects.leased([])
    effects.renewed("t1", "a1", 30)
    await effects.stop()
    assert [announce for _, announce in mirror.calls] == [None]
    assert redis.published == []
