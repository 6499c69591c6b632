"""Agent configuration and lifecycle without a platform (nothing listens on the targets)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from ossa_cli.ports import free_port
from ossa_sdk import DEFAULT_GATEWAY, Agent
from ossa_sdk.handlers import echo


def nowhere() -> str:
    return f"127.0.0.1:{free_port()}"


def test_defaults_and_targets() -> None:
    agent = Agent("a-1", capabilities=["summarize"], handler="echo")
    assert (agent.type, agent.version, agent.slots, agent.id, agent.running) == ("worker", "1.0.0", 1, None, 0)
    assert agent.registry_target == agent.orchestrator_target == DEFAULT_GATEWAY == "127.0.0.1:3100"
    direct = Agent("a-2", gateway="gw:1", registry="reg:2")
    assert (direct.registry_target, direct.orchestrator_target) == ("reg:2", "gw:1")


def test_handler_decorator_returns_the_function() -> None:
    agent = Agent("a-1")

    @agent.handler
    def summarize(task_input: dict[str, Any]) -> dict[str, Any]:
        return {}

    assert summarize({}) == {}
    assert agent._handler is summarize
    assert Agent("a-2", handler="echo")._handler is echo


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type": "robot"}, "unknown agent type 'robot'"),
        ({"type": "type_unspecified"}, "unknown agent type"),
        ({"slots": 0}, "slots must be 1-1000"),
        ({"slots": 1001}, "slots must be 1-1000"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Agent("a-1", **kwargs)


async def test_serve_needs_a_handler() -> None:
    with pytest.raises(ValueError, match="no handler"):
        await Agent("a-1").serve()


async def test_stop_before_serve_makes_serve_return_and_an_agent_serves_once() -> None:
    agent = Agent("a-1", handler="echo", gateway=nowhere())
    agent.stop()
    await asyncio.wait_for(agent.serve(), 2)
    with pytest.raises(RuntimeError, match="serves once"):
        await agent.serve()


async def test_stop_while_registering_from_another_thread() -> None:
    agent = Agent("a-1", handler="echo", gateway=nowhere())
    task = asyncio.create_task(agent.serve())
    await asyncio.sleep(0.3)  # registration keeps failing: nothing listens
    assert not task.done() and agent.id is None
    thread = threading.Thread(target=agent.stop)
    thread.start()
    thread.join()
    await asyncio.wait_for(task, 2)
    agent.stop()  # idempotent after the end too


async def test_set_slots_validates() -> None:
    agent = Agent("a-1", slots=2)
    with pytest.raises(ValueError):
        await agent.set_slots(0)
    await agent.set_slots(5)
    assert agent.slots == 5
