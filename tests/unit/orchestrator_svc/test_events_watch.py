"""The EventHub's watch bookkeeping: local watchers, executions watched by other processes, and the
batch message carrying changed executions only when some are watched."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from orchestrator_svc import events
from orchestrator_svc.events import EventHub


class FakeRedis:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    async def publish(self, channel: str, data: str) -> None:
        self.published.append(json.loads(data))


class FakeDispatcher:
    def released(self, agent_id: str, task_id: str) -> None:
        pass

    def wake(self, keys: Any) -> None:
        pass


@pytest.fixture
def hub() -> EventHub:
    return EventHub(FakeRedis(), FakeDispatcher())  # type: ignore[arg-type]


def test_local_watchers_are_called_and_removed(hub: EventHub) -> None:
    calls: list[str] = []
    remove = hub.on_change("e1", lambda: calls.append("e1"))
    assert hub.watching
    hub.changed_local(["e1", "e2"])
    assert calls == ["e1"]
    remove()
    assert not hub.watching
    hub.changed_local(["e1"])
    assert calls == ["e1"]


def test_watches_announced_elsewhere_expire(hub: EventHub, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    assert hub.watched_elsewhere(["e1"]) == set()
    hub._handle(json.dumps({"origin": "other", "watch": ["e1"]}))
    assert hub.watched_elsewhere(["e1", "e2"]) == {"e1"}
    now[0] += events.WATCH_TTL_SECONDS + 1
    assert hub.watched_elsewhere(["e1"]) == set()
    assert not hub._watched  # all expired: forgotten, nothing is computed per batch any more


def test_own_announcements_are_ignored_and_changes_elsewhere_notify(hub: EventHub) -> None:
    hub._handle(json.dumps({"origin": hub._origin, "watch": ["e1"]}))
    assert hub.watched_elsewhere(["e1"]) == set()
    calls: list[str] = []
    hub.on_change("e1", lambda: calls.append("e1"))
    hub._handle(json.dumps({"origin": "other", "ready": [], "freed": [], "revoked": [], "changed": ["e1"]}))
    assert calls == ["e1"]


async def test_the_batch_message_names_changed_executions_only_when_watched(hub: EventHub) -> None:
    redis: FakeRedis = hub.redis  # type: ignore[assignment]
    for message in (hub.message(["cap"], [], []), hub.message([], [], [], []), hub.message([], [], [], ["e1"])):
        if message is not None:  # nothing at all: no message
            await hub.send(message)
    await hub.announce_watch("e2")
    assert redis.published[0] == {"origin": hub._origin, "ready": ["cap"], "freed": [], "revoked": []}
    assert redis.published[1]["changed"] == ["e1"]
    assert redis.published[2] == {"origin": hub._origin, "watch": ["e2"]}
    assert len(redis.published) == 3


def test_the_message_is_none_when_there_is_nothing_to_say(hub: EventHub) -> None:
    assert hub.message([], [], [], []) is None
    text = hub.message(["cap"], [("agent", "task")], [])
    assert text is not None
    assert json.loads(text) == {"origin": hub._origin, "ready": ["cap"], "freed": [["agent", "task"]], "revoked": []}


def test_own_messages_are_skipped_before_parsing_and_others_are_not(hub: EventHub) -> None:
    woken: list[Any] = []
    hub.dispatcher.wake = woken.append  # type: ignore[method-assign]
    own = hub.message(["cap"], [], [])
    assert own is not None and own.startswith(hub._own)
    hub._handle(own)
    assert woken == []
    other = json.dumps({"origin": hub._origin[:-1] + "x", "ready": ["cap"], "freed": [], "revoked": []})
    hub._handle(other)  # an origin that differs only in its last character is someone else's
    assert woken == [["cap"]]
