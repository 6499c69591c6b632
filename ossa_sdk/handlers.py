"""Handlers: the built-in ones, resolving a handler by name, calling one, and shaping its output.

A handler takes the task input, `{"params": {...}, "context": {...}, "upstream": {...}}`, and
returns the task output: a JSON-able dict (anything else is wrapped as `{"result": value}`). It
may be a coroutine function (run on the event loop) or a plain function (run in a thread).

Built-in handlers, referable by name (`ossa agent serve --handler echo`):

- `echo`  returns its input;
- `sleep` sleeps `params.seconds` (default 1) without blocking, then returns its input;
- `fail`  raises an exception with `params.message` (default "task failed").
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ossa_sdk.errors import HandlerError, OutputError

TaskInput = dict[str, Any]
TaskOutput = dict[str, Any]
# A function of the task input returning the output, or an awaitable of it.
Handler = Callable[[TaskInput], Any]


def _params(task_input: Mapping[str, Any]) -> Mapping[str, Any]:
    params = task_input.get("params")
    return params if isinstance(params, Mapping) else {}


async def echo(task_input: TaskInput) -> TaskOutput:
    """Return the task input unchanged."""
    return task_input


async def sleep(task_input: TaskInput) -> TaskOutput:
    """Sleep `params.seconds` (default 1), then return the task input."""
    seconds = _params(task_input).get("seconds", 1)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
        raise ValueError(f"params.seconds must be a number, not {seconds!r}")
    await asyncio.sleep(max(0.0, float(seconds)))
    return task_input


async def fail(task_input: TaskInput) -> TaskOutput:
    """Raise an exception (message from `params.message`); the task fails and may be retried."""
    raise RuntimeError(str(_params(task_input).get("message", "task failed")))


BUILTIN_HANDLERS: dict[str, Handler] = {"echo": echo, "sleep": sleep, "fail": fail}


def resolve_handler(spec: str) -> Handler:
    """A built-in handler by name, or `package.module:function` (`function` may be dotted: `Class.method`).

    Raises HandlerError with a one-line message when the spec cannot be resolved.
    """
    spec = spec.strip()
    if spec in BUILTIN_HANDLERS:
        return BUILTIN_HANDLERS[spec]
    module_name, colon, attr_path = spec.partition(":")
    if not colon or not module_name or not attr_path:
        names = ", ".join(sorted(BUILTIN_HANDLERS))
        raise HandlerError(f"handler {spec!r} is neither a built-in ({names}) nor MODULE:FUNCTION")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as err:  # ImportError, SyntaxError, or whatever the module raises on import
        raise HandlerError(f"cannot import module {module_name!r} for handler {spec!r}: {_one_line(err)}") from None
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise HandlerError(f"handler {spec!r}: {module_name} has no attribute {attr_path!r}") from None
    if not callable(target):
        raise HandlerError(f"handler {spec!r} is not callable (it is a {type(target).__name__})")
    return target  # type: ignore[no-any-return]


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def is_async(handler: Handler) -> bool:
    """True for coroutine functions, including callable objects with an `async def __call__`."""
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__)


async def invoke(handler: Handler, task_input: TaskInput) -> Any:
    """Call a handler: coroutine functions on the loop, plain functions in a worker thread."""
    if is_async(handler):
        result = await handler(task_input)
    else:
        result = await asyncio.to_thread(handler, task_input)
    if inspect.isawaitable(result):  # a plain function that returned a coroutine
        result = await result
    return result


@dataclass(frozen=True)
class TaskResult:
    """A handler's output with what it cost (counted against the execution's budget.max_cost)."""

    output: Any
    cost: float = 0.0


def to_output(value: Any) -> TaskOutput:
    """The task output for a handler's return value: a dict as is, anything else as {"result": value}.

    The value must be JSON (dicts with string keys, lists, strings, finite numbers, booleans,
    None); tuples become lists. Raises OutputError otherwise.
    """
    output = value if isinstance(value, dict) else {"result": value}
    try:
        text = json.dumps(output, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise OutputError(f"handler output is not JSON: {err}") from None
    result: TaskOutput = json.loads(text)
    return result


def describe(err: BaseException) -> str:
    """`Type: message`, the error a failed task reports."""
    message = str(err)
    return f"{type(err).__name__}: {message}" if message else type(err).__name__
