"""Handlers for `ossa agent serve --handler tests.e2e.role_handlers:<name>` in tests/e2e/test_roles.py."""

from __future__ import annotations

import asyncio
from typing import Any

from ossa_sdk.roles import critic


async def _slow_accept(output: Any, task_input: dict[str, Any]) -> tuple[bool, Any]:
    await asyncio.sleep(float((task_input.get("params") or {}).get("sleep", 0)))
    return True, "fine"


slow_critic = critic(_slow_accept)  # accepts anything after params.sleep seconds
