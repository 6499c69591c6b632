"""The event loop every OSSA process runs on: uvloop where it is installed, else asyncio's own.

uvloop (libuv) makes each socket read and write, callback and timer cheaper than asyncio's
selector loop; the orchestrator pays one of each per PostgreSQL, Redis and gRPC message, so it is
measured there (benchmarks/bench_orchestrator.py: about a fifth less orchestrator CPU per task).
grpc.aio, asyncpg and redis-py all run on it. `OSSA_EVENT_LOOP=asyncio` turns it off.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
CHOICES = ("auto", "uvloop", "asyncio")


def uses_uvloop(choice: str = "auto") -> bool:
    """Whether `choice` (OSSA_EVENT_LOOP) means uvloop here: "auto" when it is installed."""
    if choice not in CHOICES:
        raise ValueError(f"event loop {choice!r}: use one of {', '.join(CHOICES)}")
    if choice == "asyncio":
        return False
    available = importlib.util.find_spec("uvloop") is not None
    if choice == "uvloop" and not available:
        raise ValueError("event loop 'uvloop': uvloop is not installed (pip install uvloop)")
    return available


def run(main: Coroutine[Any, Any, T], choice: str = "auto") -> T:
    """asyncio.run(main) on the chosen loop."""
    if uses_uvloop(choice):
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
