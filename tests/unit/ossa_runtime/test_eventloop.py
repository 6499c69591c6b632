"""ossa_runtime/eventloop.py: which loop runs, and a wrong choice is a clear error."""

from __future__ import annotations

import asyncio

import pytest

from ossa_runtime import eventloop
from ossa_runtime.settings import Settings, SettingsError


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_runs_on_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop")
    assert eventloop.uses_uvloop("auto") and eventloop.uses_uvloop("uvloop")
    assert eventloop.run(_loop_module(), "auto").startswith("uvloop")


def test_asyncio_choice_runs_asyncios_own_loop() -> None:
    assert not eventloop.uses_uvloop("asyncio")
    assert eventloop.run(_loop_module(), "asyncio").startswith("asyncio")


def test_unknown_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="use one of auto, uvloop, asyncio"):
        eventloop.uses_uvloop("trio")
    with pytest.raises(SettingsError, match="OSSA_EVENT_LOOP=trio"):
        Settings.from_env({"OSSA_EVENT_LOOP": "trio"})
