"""The handler the fault suite's agents run: `ossa agent serve --handler benchmarks.faults_handler:handle`.

What a step does is in its params:

- `ms`: sleep that long first (the agent holds the lease meanwhile);
- `flaky: true`: the first attempt of the task fails (retryable), later ones succeed. "First" is
  decided across every agent process by creating a marker file named after the task (its execution's
  `context.run` and the step) in $OSSA_FAULTS_MARKERS with O_EXCL: only one attempt ever creates it;
- `doom: true`: always fails (the workload's intended failures, with max_retries 0).

The output is small and deterministic (the step, the run, the upstream steps it saw), so an
execution's `results` can be compared with its tasks' outputs.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

MARKERS_ENV = "OSSA_FAULTS_MARKERS"


class DesignedFailure(RuntimeError):
    """A failure the workload asked for."""


def first_attempt(run: str, step: str) -> bool:
    """True exactly once per (run, step), whichever process asks first."""
    directory = Path(os.environ.get(MARKERS_ENV) or "/tmp/ossa-faults-markers")
    directory.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(f"{run}/{step}".encode()).hexdigest()[:32]
    try:
        fd = os.open(directory / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    return True


async def handle(task_input: dict[str, Any]) -> dict[str, Any]:
    params = task_input.get("params") or {}
    context = task_input.get("context") or {}
    step, run = str(params.get("step", "")), str(context.get("run", ""))
    if params.get("doom"):
        raise DesignedFailure(f"step {step} is doomed by design")
    if params.get("flaky") and await asyncio.to_thread(first_attempt, run, step):
        raise DesignedFailure(f"step {step}: the first attempt fails by design")
    ms = params.get("ms", 0)
    if isinstance(ms, int | float) and ms > 0:
        await asyncio.sleep(ms / 1000)
    return {"step": step, "run": run, "upstream": sorted(task_input.get("upstream") or {})}
