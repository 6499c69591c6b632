"""`ossa up` as a supervisor: parts killed with -9 come back by themselves, data and all, and a part
that keeps crashing ends `ossa up` with exit code 1.

Each test runs its own platform (it kills parts of it). PIDs come from what `ossa up` prints
(Platform.pids).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from tests.e2e.platform import Platform, make_platform, request

pytestmark = pytest.mark.e2e

T = TypeVar("T")
RESTART = re.compile(r"^(\S+) \(pid \d+\) .*; restart \d+ in [\d.]+s ", re.MULTILINE)


def pids(platform: Platform) -> dict[str, int]:
    """Each part's current PID, from the output of `ossa up`."""
    return platform.pids()


def eventually(platform: Platform, what: str, check: Callable[[], T | None], timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:g}s\n{platform.log_tail()}")


def restarted(platform: Platform, part: str, old_pid: int) -> int:
    new = pids(platform).get(part)
    return new if new is not None and new != old_pid else 0


def healthy(platform: Platform) -> bool:
    try:
        status, _, report = request(platform.gateway, "GET", "/api/v1/health", timeout=5)
    except OSError:
        return False
    return status == 200 and report["status"] == "healthy"


def register(platform: Platform) -> dict[str, str]:
    body = {"name": f"survivor-{secrets.token_hex(3)}", "type": "worker", "version": "1.0.0"}
    status, _, agent = request(platform.gateway, "POST", "/api/v1/agents", body)
    assert status == 201, agent
    return dict(agent)


def test_killed_parts_are_restarted_and_the_platform_serves_again(tmp_path: Path) -> None:
    platform = make_platform(tmp_path / "data")
    platform.start("--orchestrators", "2")
    try:
        agents = [register(platform)]
        for part in ("envoy", "redis", "postgres", "orchestrator[2]"):
            old = eventually(platform, f"the PID of {part}", lambda: pids(platform).get(part))  # noqa: B023
            os.kill(old, signal.SIGKILL)
            eventually(platform, f"{part} restarted", lambda: restarted(platform, part, old))  # noqa: B023
            eventually(platform, f"healthy after {part} was killed", lambda: healthy(platform))
            for agent in agents:  # written before the kill, still there
                status, _, again = request(platform.gateway, "GET", f"/api/v1/agents/{agent['id']}")
                assert status == 200 and again["name"] == agent["name"], (part, again)
            agents.append(register(platform))
            assert f"{part} (pid {old}) was killed by SIGKILL; restart 1 in 0.5s" in platform.log_tail(200)
        # The services were not restarted along with what they use: they reconnected by themselves.
        restarts = RESTART.findall(platform.output.read_text(errors="replace"))
        assert sorted(restarts) == sorted(["envoy", "redis", "postgres", "orchestrator[2]"])
    finally:
        assert platform.stop() == 0, platform.log_tail()


def test_a_part_that_keeps_crashing_makes_ossa_up_give_up(tmp_path: Path) -> None:
    # A first delay of 2 s leaves the test ample time to take the port before the first restart.
    limits = {"OSSA_RESTART_CRASHES_MAX": "3", "OSSA_RESTART_BACKOFF_SECONDS": "2"}
    platform = make_platform(tmp_path / "data", limits)
    platform.start()
    assert platform.proc is not None
    port = platform.port("redis")
    with socket.socket() as squatter:  # Valkey cannot listen while this holds its port: it exits at once
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

        def take_the_port() -> bool:
            try:
                squatter.bind(("127.0.0.1", port))
            except OSError:  # Valkey still has it: kill it (again, if its restart won the race)
                valkey = eventually(platform, "the PID of redis", lambda: pids(platform).get("redis"))
                with contextlib.suppress(ProcessLookupError):
                    os.kill(valkey, signal.SIGKILL)
                return False
            squatter.listen()
            return True

        try:
            eventually(platform, "the Redis port taken", take_the_port, timeout=30)
            code = platform.proc.wait(timeout=90)
        finally:
            platform.stop()
    assert code == 1, platform.log_tail()
    out = platform.output.read_text(errors="replace")
    expected = [
        "was killed by SIGKILL; restart 1 in 2s (ossa up gives up after 3 crashes within 60s)",
        "exited with code 1 while starting; restart 2 in 4s",
        "exited with code 1 while starting; that is 3 crashes within 60s: giving up",
        "last lines of",
        "Failed listening on port",  # from Valkey's log
        "stopping the rest",
    ]
    assert all(line in out for line in expected) and "Traceback" not in out, out
