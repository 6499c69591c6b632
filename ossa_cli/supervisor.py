"""Run a set of child processes in stages: start in order, restart what crashes, stop in reverse order.

Once everything is up, a child that exits by itself is started again after a backoff and must pass
its readiness probe again; after too many crashes of one child (ossa_cli/restart.py) the supervisor
gives up and stops the rest. The children that depend on a restarted one are left alone: they
reconnect by themselves. A stop that was asked for is never counted as a crash.

Every child is a foreground process in its own process group (a terminal's Ctrl-C reaches only the
supervisor, which then stops the children in order). The supervisor starts them from the thread
running its event loop, which must be the main thread and must outlive them: Envoy (and every
child started through `setpriv --pdeathsig`) is killed by the kernel when that thread ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ossa_cli.children import Child, Component, Interrupted, StartupError, exit_status, indent
from ossa_cli.embedded import open_log
from ossa_cli.probes import describe, probe_unless_exited
from ossa_cli.restart import CrashCount, RestartPolicy

Say = Callable[[str], None]
Slot = tuple[int, int]  # (stage, position in the stage) of a child in Supervisor.children


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Supervisor:
    """`clock` (monotonic seconds) times the crashes and `sleep` waits out the backoff (tests pass
    their own); `policy` says when to restart and when to give up."""

    def __init__(
        self,
        stages: Sequence[Sequence[Component]],
        *,
        startup_timeout: float = 60.0,
        say: Say = _say,
        policy: RestartPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.stages = [list(stage) for stage in stages]
        self.startup_timeout = startup_timeout
        self.say = say
        self.policy = policy or RestartPolicy()
        self.clock = clock
        self.sleep = sleep
        self.children: list[list[Child]] = []  # the current process of each component, restarts included
        self._stop_requested = asyncio.Event()
        self._force = asyncio.Event()
        self._exits: asyncio.Queue[Child] = asyncio.Queue()  # exits while starting
        self._started = False
        self._stopping = False
        self._keepers: list[asyncio.Task[str | None]] = []
        self._stop_task: asyncio.Task[None] | None = None

    @property
    def running(self) -> list[Child]:
        return [child for stage in self.children for child in stage]

    # Starting ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start stage by stage, each stage once the previous one is ready.

        Raises StartupError (a child failed or was not ready in time) or Interrupted; call stop()
        afterwards either way.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.startup_timeout
        for stage in self.stages:
            self._check_interrupted()
            started: list[Child] = []
            self.children.append(started)
            for component in stage:
                if component.prepare is not None:
                    await self._prepare(component)
                    self._check_interrupted()
                started.append(await self._spawn(component))
            results = await asyncio.gather(*(self._wait_ready(c, deadline) for c in started), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
        self._started = True

    def _check_interrupted(self) -> None:
        if self._stop_requested.is_set():
            raise Interrupted()

    async def _prepare(self, component: Component) -> None:
        assert component.prepare is not None
        try:
            await asyncio.to_thread(component.prepare)
        except Exception as err:
            raise StartupError(component.name, f"could not be prepared: {err}", None, "") from err

    async def _spawn(self, component: Component) -> Child:
        try:
            argv = list(component.argv())
            env = dict(component.env()) if component.env is not None else None
        except Exception as err:
            raise StartupError(component.name, f"could not be configured: {err}", None, "") from err
        log, offset = open_log(component.log_path)
        with log:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    process_group=0,
                )
            except OSError as err:
                raise StartupError(component.name, f"could not run {argv[0]}: {err}", None, "") from err
        exited: asyncio.Future[int] = asyncio.ensure_future(proc.wait())
        child = Child(component, proc, offset, exited)
        exited.add_done_callback(lambda _: self._on_exit(child))
        return child

    def _on_exit(self, child: Child) -> None:
        if not self._started and not self._stopping:
            self._exits.put_nowait(child)

    def _dead(self, child: Child) -> Child | None:
        """A child that exited: while starting, any of them; afterwards, `child`."""
        if not self._started and not self._exits.empty():
            dead = self._exits.get_nowait()
            self._exits.put_nowait(dead)  # still there for the next look
            return dead
        return child if child.exited.done() else None

    async def _wait_ready(self, child: Child, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        last_error = "no answer yet"
        while True:
            self._check_interrupted()
            dead = self._dead(child)
            if dead is not None:
                raise StartupError(
                    dead.name,
                    f"{exit_status(dead.proc.returncode)} while starting",
                    dead.component.log_path,
                    dead.tail(),
                )
            remaining = deadline - loop.time()
            try:
                await probe_unless_exited(child.component.ready, child.exited, max(0.2, min(5.0, remaining)))
                if not child.exited.done():
                    return
            except Exception as err:  # TimeoutError included
                last_error = describe(err)
            if loop.time() >= deadline:
                raise StartupError(
                    child.name,
                    f"not ready after {self.startup_timeout:g}s ({last_error})",
                    child.component.log_path,
                    child.tail(),
                )
            await asyncio.sleep(0.1)

    # Running: restarts -------------------------------------------------------------------------

    async def watch(self) -> str | None:
        """After start(): restart every child that exits, until a stop is requested (None) or one
        child crashed too often (returns what to tell the user)."""
        self._started = True
        slots = [(i, j) for i, stage in enumerate(self.children) for j in range(len(stage))]
        self._keepers = [asyncio.ensure_future(self._keep(slot)) for slot in slots]
        stop = asyncio.ensure_future(self._stop_requested.wait())
        pending: set[asyncio.Future[Any]] = {stop, *self._keepers}
        try:
            while not stop.done():
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for keeper in done - {stop}:
                    failure = None if keeper.cancelled() else keeper.result()  # cancelled: stopping
                    if failure is not None and not stop.done():
                        return str(failure)
            return None
        finally:
            stop.cancel()

    def _at(self, slot: Slot) -> Child:
        return self.children[slot[0]][slot[1]]

    async def _keep(self, slot: Slot) -> str | None:
        """Restart the child in `slot` each time it exits; returns the give-up message, or None if
        a stop interrupted a restart."""
        crashes = CrashCount(self.policy)
        child = self._at(slot)
        status = exit_status(await child.wait())
        while True:
            delay = crashes.crashed(self.clock())
            if delay is None:
                tail = indent(child.tail()) or "  (empty)"
                return (
                    f"{child.name} (pid {child.pid}) {status}; that is {self.policy.limit}: giving up\n"
                    f"last lines of {child.component.log_path}:\n{tail}\nstopping the rest"
                )
            self.say(
                f"{child.name} (pid {child.pid}) {status}; restart {crashes.count} in {delay:g}s "
                f"(ossa up gives up after {self.policy.limit})"
            )
            await self.sleep(delay)
            try:
                failure = await self._restart(slot)
            except Interrupted:
                return None
            child = self._at(slot)
            if failure is None:
                self.say(f"{child.name} restarted (pid {child.pid}) and ready")
                status = exit_status(await child.wait())
            else:
                status = failure

    async def _restart(self, slot: Slot) -> str | None:
        """Start the component in `slot` again and wait until it is ready: None, or why it failed."""
        component = self._at(slot).component
        if component.recover is not None:
            try:
                await asyncio.to_thread(component.recover)
            except Exception as err:
                return f"could not be restarted: {err}"
        try:
            child = await self._spawn(component)
        except StartupError as err:
            return err.reason
        self.children[slot[0]][slot[1]] = child
        try:
            await self._wait_ready(child, asyncio.get_running_loop().time() + self.startup_timeout)
        except StartupError as err:
            await self._stop_child(child)  # not ready in time: it counts as a crash
            return err.reason
        return None

    def request_stop(self) -> None:
        """First call: stop gracefully. Later calls: stop what is left immediately (SIGKILL)."""
        if self._stop_requested.is_set():
            if not self._force.is_set():
                self.say("stopping immediately")
                self._force.set()
            return
        self._stop_requested.set()

    # Stopping ----------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop every child, stage by stage in reverse order. Idempotent; later calls wait for it."""
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stop_task)

    async def _stop(self) -> None:
        self._stopping = True
        self._stop_requested.set()
        for keeper in self._keepers:  # no restarts from now on, and no waiting for a backoff
            keeper.cancel()
        await asyncio.gather(*self._keepers, return_exceptions=True)
        for stage in reversed(self.children):
            await asyncio.gather(*(self._stop_child(child) for child in stage))

    async def _stop_child(self, child: Child) -> None:
        if child.proc.returncode is None:
            if not self._force.is_set():
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(child.component.stop_signal)
                force: asyncio.Future[Any] = asyncio.ensure_future(self._force.wait())
                waiting: set[asyncio.Future[Any]] = {child.exited, force}
                try:
                    await asyncio.wait(
                        waiting, timeout=child.component.stop_timeout, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    force.cancel()
            if child.proc.returncode is None and not child.exited.done():
                if not self._force.is_set():
                    timeout = child.component.stop_timeout
                    self.say(f"{child.name} (pid {child.pid}) did not stop in {timeout:g}s: killing it")
                with contextlib.suppress(ProcessLookupError):
                    child.proc.kill()
        await child.wait()

    # Everything together -----------------------------------------------------------------------

    async def run(self, on_ready: Callable[[Supervisor], None]) -> int:
        """Start, call `on_ready`, restart what crashes, run until SIGINT/SIGTERM/SIGHUP (exit code 0)
        or until start-up fails or a child crashes too often (1); stop everything in every case."""
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: the terminal went away
        for sig in signals:
            loop.add_signal_handler(sig, self.request_stop)
        try:
            try:
                await self.start()
            except Interrupted:
                self.say("interrupted while starting: stopping")
                return 0
            except StartupError as err:
                if self._stop_requested.is_set():  # e.g. Ctrl-C also reached initdb
                    self.say("interrupted while starting: stopping")
                    return 0
                self.say(err.report())
                return 1
            on_ready(self)
            failure = await self.watch()
            if failure is None:
                self.say("stopping (press Ctrl-C again to stop immediately)")
                return 0
            self.say(failure)
            return 1
        finally:
            await self.stop()
            self.say("stopped")
            for sig in signals:
                loop.remove_signal_handler(sig)
