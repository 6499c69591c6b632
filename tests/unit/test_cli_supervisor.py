"""ossa_cli.supervisor with small Python children: order, readiness, failures, shutdown, signals."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from ossa_cli.supervisor import Component, StartupError, Supervisor

# A child: prints a line, optionally crashes, marks itself ready, and records the order in which
# children were asked to stop. "stubborn" ignores SIGTERM; "exit-later" exits by itself after 0.3 s.
CHILD = """
import pathlib, signal, sys, time
name, workdir, mode = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
def on_term(*_):
    with (workdir / "stopped").open("a") as f:
        f.write(name + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "stubborn" else on_term)
print(f"{name} started", flush=True)
if mode == "crash":
    sys.exit(3)
(workdir / f"{name}.ready").touch()
deadline = time.monotonic() + (0.3 if mode == "exit-later" else 60)
while time.monotonic() < deadline:
    time.sleep(0.02)
"""


def child(workdir: Path, name: str, mode: str = "normal", stop_timeout: float = 10.0) -> Component:
    async def ready() -> None:
        if not (workdir / f"{name}.ready").exists():
            raise RuntimeError("no ready file yet")

    return Component(
        name=name,
        argv=lambda: [sys.executable, "-c", CHILD, name, str(workdir), mode],
        log_path=workdir / "logs" / f"{name}.log",
        address="-",
        ready=ready,
        stop_timeout=stop_timeout,
    )


def stopped(workdir: Path) -> list[str]:
    path = workdir / "stopped"
    return path.read_text().split() if path.exists() else []


class Said:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, message: str) -> None:
        self.lines.append(message)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


async def test_starts_stage_by_stage_and_stops_in_reverse(tmp_path: Path) -> None:
    sup = Supervisor(
        [[child(tmp_path, "a")], [child(tmp_path, "b"), child(tmp_path, "c")], [child(tmp_path, "d")]],
        startup_timeout=20,
        say=Said(),
    )
    try:
        await sup.start()
        assert [c.name for c in sup.running] == ["a", "b", "c", "d"]
        assert all(c.proc.returncode is None for c in sup.running)
        assert (tmp_path / "logs" / "a.log").read_text() == "a started\n"
    finally:
        await sup.stop()
    order = stopped(tmp_path)
    assert order[0] == "d" and set(order[1:3]) == {"b", "c"} and order[3] == "a"
    assert all(c.proc.returncode == 0 for c in sup.running)


async def test_stop_is_idempotent(tmp_path: Path) -> None:
    sup = Supervisor([[child(tmp_path, "a")]], startup_timeout=20, say=Said())
    await sup.start()
    await asyncio.gather(sup.stop(), sup.stop())
    await sup.stop()
    assert stopped(tmp_path) == ["a"]


async def test_crash_while_starting_reports_the_log(tmp_path: Path) -> None:
    sup = Supervisor([[child(tmp_path, "ok")], [child(tmp_path, "bad", "crash")]], startup_timeout=20, say=Said())
    try:
        with pytest.raises(StartupError) as err:
            await sup.start()
    finally:
        await sup.stop()
    assert err.value.component == "bad"
    assert "exited with code 3 while starting" in str(err.value)
    assert "bad started" in err.value.report()
    assert stopped(tmp_path) == ["ok"]


async def test_not_ready_in_time_names_component_and_reason(tmp_path: Path) -> None:
    never = child(tmp_path, "slow")

    async def not_ready() -> None:
        raise ConnectionRefusedError("nobody home")

    never.ready = not_ready
    sup = Supervisor([[never]], startup_timeout=0.5, say=Said())
    try:
        with pytest.raises(StartupError, match=r"slow: not ready after 0.5s \(ConnectionRefusedError: nobody home\)"):
            await sup.start()
    finally:
        await sup.stop()
    assert sup.running[0].proc.returncode is not None


async def test_unexpected_exit_stops_the_rest_and_returns_1(tmp_path: Path) -> None:
    said = Said()
    sup = Supervisor([[child(tmp_path, "db")], [child(tmp_path, "svc", "exit-later")]], startup_timeout=20, say=said)
    ready: list[str] = []
    code = await asyncio.wait_for(sup.run(lambda s: ready.extend(c.name for c in s.running)), 30)
    assert code == 1
    assert ready == ["db", "svc"]
    assert "svc (pid" in said.text and "exited with code 0 unexpectedly" in said.text
    assert "svc started" in said.text
    assert stopped(tmp_path) == ["db"]


async def test_sigterm_stops_everything_and_returns_0(tmp_path: Path) -> None:
    sup = Supervisor([[child(tmp_path, "a")], [child(tmp_path, "b")]], startup_timeout=20, say=Said())

    def on_ready(_: Supervisor) -> None:
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)

    assert await asyncio.wait_for(sup.run(on_ready), 30) == 0
    assert stopped(tmp_path) == ["b", "a"]


async def test_second_stop_request_kills_what_is_left(tmp_path: Path) -> None:
    said = Said()
    sup = Supervisor(
        [[child(tmp_path, "a")], [child(tmp_path, "stubborn", "stubborn", stop_timeout=60)]],
        startup_timeout=20,
        say=said,
    )
    await sup.start()
    sup.request_stop()
    stopping = asyncio.ensure_future(sup.stop())
    await asyncio.sleep(0.3)
    assert not stopping.done()  # waiting for the stubborn child's grace period
    sup.request_stop()
    await asyncio.wait_for(stopping, 10)
    assert "stopping immediately" in said.text
    by_name = {c.name: c.proc.returncode for c in sup.running}
    assert by_name["stubborn"] == -signal.SIGKILL
    assert by_name["a"] == -signal.SIGKILL  # still running when the second request came: killed too
    assert stopped(tmp_path) == []


async def test_grace_period_then_sigkill(tmp_path: Path) -> None:
    said = Said()
    sup = Supervisor([[child(tmp_path, "stubborn", "stubborn", stop_timeout=0.3)]], startup_timeout=20, say=said)
    await sup.start()
    await asyncio.wait_for(sup.stop(), 10)
    assert sup.running[0].proc.returncode == -signal.SIGKILL
    assert "did not stop in 0.3s: killing it" in said.text


async def test_stop_request_while_starting_interrupts(tmp_path: Path) -> None:
    never = child(tmp_path, "waiting")

    async def not_ready() -> None:
        raise RuntimeError("not yet")

    never.ready = not_ready
    said = Said()
    sup = Supervisor([[never], [child(tmp_path, "never-started")]], startup_timeout=30, say=said)

    def stop_soon() -> None:
        sup.request_stop()

    asyncio.get_running_loop().call_later(0.5, stop_soon)
    assert await asyncio.wait_for(sup.run(lambda s: None), 10) == 0
    assert [c.name for c in sup.running] == ["waiting"]
    assert "interrupted while starting" in said.text
