"""ossa_cli.supervisor with small Python children: order, readiness, failures, restarts, shutdown, signals.

Restart delays go to an injected sleep that returns at once (or never) and crashes are timed by a
clock that stands still, so no test waits out a backoff or depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from ossa_cli.children import Child, Component, StartupError
from ossa_cli.restart import RestartPolicy
from ossa_cli.supervisor import Supervisor

# A child: prints a line, optionally crashes, marks itself ready, and records the order in which
# children were asked to stop. "stubborn" ignores SIGTERM; "crash-again" and "hang-again" start
# normally the first time, then crash or never get ready.
CHILD = """
import pathlib, signal, sys, time
name, workdir, mode = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
def on_term(*_):
    with (workdir / "stopped").open("a") as f:
        f.write(name + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "stubborn" else on_term)
print(f"{name} started", flush=True)
again = (workdir / f"{name}.runs").exists()
(workdir / f"{name}.runs").touch()
if mode == "crash" or (again and mode == "crash-again"):
    sys.exit(3)
if not (again and mode == "hang-again"):
    (workdir / f"{name}.ready").touch()
deadline = time.monotonic() + 60
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


def kill(workdir: Path, running: Child) -> None:
    """kill -9 a child; its next process must mark itself ready again."""
    (workdir / f"{running.name}.ready").unlink(missing_ok=True)
    os.kill(running.pid, signal.SIGKILL)


class Said:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._said = asyncio.Event()

    def __call__(self, message: str) -> None:
        self.lines.append(message)
        self._said.set()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    async def wait_for(self, needle: str, times: int = 1, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while self.text.count(needle) < times:
                self._said.clear()
                await self._said.wait()


class Sleeps:
    """The supervisor's sleep: records each delay and returns at once (or, `forever`, never)."""

    def __init__(self, forever: bool = False) -> None:
        self.delays: list[float] = []
        self.forever = forever

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.forever:
            await asyncio.Event().wait()


def restarting(stages: list[list[Component]], said: Said, sleeps: Sleeps, **options: Any) -> Supervisor:
    """A supervisor whose clock stands still: every crash falls within the policy's window."""
    return Supervisor(stages, startup_timeout=20, say=said, sleep=sleeps, clock=lambda: 0.0, **options)


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


async def test_a_killed_child_is_restarted_and_the_others_are_left_alone(tmp_path: Path) -> None:
    said, sleeps = Said(), Sleeps()
    sup = restarting([[child(tmp_path, "db")], [child(tmp_path, "svc")]], said, sleeps)
    await sup.start()
    watching = asyncio.ensure_future(sup.watch())
    try:
        db, first = sup.running
        kill(tmp_path, first)
        await said.wait_for("svc restarted")
        second = sup.running[1]
        assert second.pid != first.pid and second.proc.returncode is None
        assert sup.running[0] is db and db.proc.returncode is None
        assert f"svc (pid {first.pid}) was killed by SIGKILL; restart 1 in 0.5s" in said.text
        assert "(ossa up gives up after 5 crashes within 60s)" in said.text
        assert f"svc restarted (pid {second.pid}) and ready" in said.text
        assert sleeps.delays == [0.5]

        kill(tmp_path, second)  # again: the next delay is twice as long
        await said.wait_for(f"svc (pid {second.pid}) was killed by SIGKILL; restart 2 in 1s")
        await said.wait_for("svc restarted (pid", times=2)
    finally:
        await sup.stop()
    assert await watching is None
    assert stopped(tmp_path) == ["svc", "db"]  # the current processes, in reverse order
    assert sleeps.delays == [0.5, 1.0]


async def test_each_child_has_its_own_crash_count(tmp_path: Path) -> None:
    said, sleeps = Said(), Sleeps()
    sup = restarting([[child(tmp_path, "a"), child(tmp_path, "b")]], said, sleeps)
    await sup.start()
    watching = asyncio.ensure_future(sup.watch())
    try:
        a, b = sup.running
        kill(tmp_path, a)
        kill(tmp_path, b)
        await said.wait_for("a restarted")
        await said.wait_for("b restarted")
    finally:
        await sup.stop()
    assert await watching is None
    assert "a (pid" in said.text and "b (pid" in said.text
    assert sleeps.delays == [0.5, 0.5]


async def test_a_child_that_keeps_crashing_ends_the_run_with_1(tmp_path: Path) -> None:
    said, sleeps = Said(), Sleeps()
    policy = RestartPolicy(max_crashes=3)
    sup = restarting([[child(tmp_path, "db")], [child(tmp_path, "svc", "crash-again")]], said, sleeps, policy=policy)
    code = await asyncio.wait_for(sup.run(lambda s: kill(tmp_path, s.running[1])), 30)
    assert code == 1
    assert sleeps.delays == [0.5, 1.0]
    assert "svc (pid" in said.text and "exited with code 3 while starting; restart 2 in 1s" in said.text
    last = sup.running[1]
    assert (
        f"svc (pid {last.pid}) exited with code 3 while starting; that is 3 crashes within 60s: giving up" in said.text
    )
    assert f"last lines of {tmp_path / 'logs' / 'svc.log'}:\n  svc started" in said.text
    assert "stopping the rest" in said.text and said.lines[-1] == "stopped"
    assert stopped(tmp_path) == ["db"]


async def test_a_child_that_exits_cleanly_by_itself_is_a_crash_too(tmp_path: Path) -> None:
    said = Said()
    sup = restarting([[child(tmp_path, "svc")]], said, Sleeps(), policy=RestartPolicy(max_crashes=1))
    assert await asyncio.wait_for(sup.run(lambda s: os.kill(s.running[0].pid, signal.SIGTERM)), 30) == 1
    assert "exited with code 0; that is 1 crash within 60s: giving up" in said.text


async def test_not_ready_after_a_restart_counts_as_a_crash(tmp_path: Path) -> None:
    said, sleeps = Said(), Sleeps()
    sup = Supervisor(
        [[child(tmp_path, "svc", "hang-again")]],
        startup_timeout=3,
        say=said,
        sleep=sleeps,
        clock=lambda: 0.0,
        policy=RestartPolicy(max_crashes=2),
    )
    code = await asyncio.wait_for(sup.run(lambda s: kill(tmp_path, s.running[0])), 30)
    assert code == 1
    assert "not ready after 3s (RuntimeError: no ready file yet); that is 2 crashes within 60s: giving up" in said.text
    assert stopped(tmp_path) == ["svc"]  # the process that never got ready was stopped, not left behind
    assert sup.running[0].proc.returncode is not None


async def test_recover_runs_before_each_restart_and_prepare_only_once(tmp_path: Path) -> None:
    calls: list[str] = []
    svc = child(tmp_path, "svc")
    svc.prepare = lambda: calls.append("prepare")
    svc.recover = lambda: calls.append("recover")
    said = Said()
    sup = restarting([[svc]], said, Sleeps())
    await sup.start()
    watching = asyncio.ensure_future(sup.watch())
    try:
        kill(tmp_path, sup.running[0])
        await said.wait_for("svc restarted")
    finally:
        await sup.stop()
    assert await watching is None
    assert calls == ["prepare", "recover"]


async def test_a_failing_recover_counts_as_a_crash(tmp_path: Path) -> None:
    def cannot() -> None:
        raise OSError("old processes still there")

    svc = child(tmp_path, "svc")
    svc.recover = cannot
    said = Said()
    sup = restarting([[svc]], said, Sleeps(), policy=RestartPolicy(max_crashes=2))
    assert await asyncio.wait_for(sup.run(lambda s: kill(tmp_path, s.running[0])), 30) == 1
    assert "could not be restarted: old processes still there; that is 2 crashes within 60s: giving up" in said.text


async def test_a_stop_during_the_backoff_is_quick_and_no_crash(tmp_path: Path) -> None:
    said, sleeps = Said(), Sleeps(forever=True)
    sup = restarting([[child(tmp_path, "db")], [child(tmp_path, "svc")]], said, sleeps)
    await sup.start()
    watching = asyncio.ensure_future(sup.watch())
    try:
        kill(tmp_path, sup.running[1])
        await said.wait_for("restart 1 in 0.5s")
        sup.request_stop()
        assert await asyncio.wait_for(watching, 10) is None
    finally:
        await asyncio.wait_for(sup.stop(), 10)  # not waiting for the backoff
    assert "svc restarted" not in said.text
    assert stopped(tmp_path) == ["db"]


async def test_sigterm_stops_everything_and_returns_0(tmp_path: Path) -> None:
    said = Said()
    sup = Supervisor([[child(tmp_path, "a")], [child(tmp_path, "b")]], startup_timeout=20, say=said)

    def on_ready(_: Supervisor) -> None:
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)

    assert await asyncio.wait_for(sup.run(on_ready), 30) == 0
    assert stopped(tmp_path) == ["b", "a"]
    assert "restart" not in said.text  # a requested stop is not a crash


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
