"""Handler resolution, the built-in handlers, calling handlers and shaping their output."""

from __future__ import annotations

import asyncio
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ossa_sdk import BUILTIN_HANDLERS, HandlerError, OutputError, PermanentError, resolve_handler, to_output
from ossa_sdk.handlers import describe, echo, fail, invoke, is_async, sleep

TASK = {"params": {"seconds": 0.05, "message": "boom"}, "context": {"run": 1}, "upstream": {}}


def test_builtins_resolve_by_name() -> None:
    assert set(BUILTIN_HANDLERS) == {"echo", "sleep", "fail"}
    assert resolve_handler("echo") is echo
    assert resolve_handler(" sleep ") is sleep
    assert resolve_handler("fail") is fail


def test_module_function_resolves() -> None:
    import json
    from collections import OrderedDict

    assert resolve_handler("json:dumps") is json.dumps
    assert resolve_handler("collections:OrderedDict.fromkeys") == OrderedDict.fromkeys


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", "neither a built-in (echo, fail, sleep) nor MODULE:FUNCTION"),
        ("json:", "nor MODULE:FUNCTION"),
        (":dumps", "nor MODULE:FUNCTION"),
        ("no_such_module_xyz:run", "cannot import module 'no_such_module_xyz'"),
        ("json:nope", "json has no attribute 'nope'"),
        ("json.decoder:JSONDecodeError.nope", "has no attribute 'JSONDecodeError.nope'"),
        ("json:__doc__", "is not callable (it is a str)"),
    ],
)
def test_bad_specs_are_one_line_errors(spec: str, message: str) -> None:
    with pytest.raises(HandlerError) as err:
        resolve_handler(spec)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_module_that_fails_to_import_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sdk_broken_handler.py").write_text("raise RuntimeError('bad\\nconfig')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(HandlerError) as err:
        resolve_handler("sdk_broken_handler:run")
    assert str(err.value) == (
        "cannot import module 'sdk_broken_handler' for handler 'sdk_broken_handler:run': RuntimeError: bad config"
    )
    sys.modules.pop("sdk_broken_handler", None)


async def test_echo_returns_its_input() -> None:
    assert await echo(TASK) == TASK


async def test_sleep_waits_without_blocking_and_returns_its_input() -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    ticker = asyncio.create_task(tick())
    start = time.monotonic()
    assert await sleep(TASK) == TASK
    ticker.cancel()
    assert time.monotonic() - start >= 0.05 and ticks >= 3


async def test_sleep_defaults_to_one_second(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("ossa_sdk.handlers.asyncio.sleep", fake_sleep)
    await sleep({"params": {}})
    await sleep({})
    assert slept == [1.0, 1.0]


@pytest.mark.parametrize("seconds", ["1", None, True, math.inf])
async def test_sleep_rejects_what_is_not_a_number(seconds: Any) -> None:
    with pytest.raises(ValueError, match=r"params\.seconds"):
        await sleep({"params": {"seconds": seconds}})


async def test_fail_raises_with_the_params_message() -> None:
    with pytest.raises(RuntimeError, match=r"^boom$"):
        await fail(TASK)
    with pytest.raises(RuntimeError, match=r"^task failed$"):
        await fail({"params": {}})


def test_output_wrapping() -> None:
    assert to_output({"summary": "x", "n": [1, 2.5, None, True]}) == {"summary": "x", "n": [1, 2.5, None, True]}
    assert to_output("text") == {"result": "text"}
    assert to_output(3) == {"result": 3}
    assert to_output(None) == {"result": None}
    assert to_output([1, (2, 3)]) == {"result": [1, [2, 3]]}


@pytest.mark.parametrize("value", [{1, 2}, {"x": math.nan}, {"x": object()}])
def test_output_that_is_not_json_is_a_permanent_error(value: Any) -> None:
    with pytest.raises(OutputError, match="not JSON"):
        to_output(value)
    assert issubclass(OutputError, PermanentError)


async def test_invoke_runs_sync_handlers_in_a_thread_and_async_ones_on_the_loop() -> None:
    loop_thread = threading.get_ident()

    def sync_handler(task_input: dict[str, Any]) -> int:
        return threading.get_ident()

    async def async_handler(task_input: dict[str, Any]) -> int:
        return threading.get_ident()

    class AsyncCallable:
        async def __call__(self, task_input: dict[str, Any]) -> int:
            return threading.get_ident()

    def returns_a_coroutine(task_input: dict[str, Any]) -> Any:
        return async_handler(task_input)

    assert await invoke(sync_handler, {}) != loop_thread
    assert await invoke(async_handler, {}) == loop_thread
    assert await invoke(AsyncCallable(), {}) == loop_thread
    assert await invoke(returns_a_coroutine, {}) == loop_thread
    assert is_async(AsyncCallable()) and not is_async(sync_handler)


def test_describe() -> None:
    assert describe(ValueError("bad input")) == "ValueError: bad input"
    assert describe(KeyError("x")) == "KeyError: 'x'"
    assert describe(RuntimeError()) == "RuntimeError"
