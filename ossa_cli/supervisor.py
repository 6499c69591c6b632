"""Run a set of child processes in stages: start in order, watch, stop in reverse order.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from ossa_cli.embedded import log_tail, open_log
from ossa_cli.probes import Probe

Say = Callable[[str], None]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Component:
    """One child process. `prepare` (blocking, run in a thread) runs before `argv`/`env` are read."""

    name: str
    argv: Callable[[], Sequence[str]]
    log_path: Path
    address: str
    ready: Probe
    env: Callable[[], Mapping[str, str]] | None = None
    prepare: Callable[[], None] | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = 10.0


@dataclass
class Child:
    component: Component
    proc: asyncio.subprocess.Process
    log_offset: int
    exited: asyncio.Future[int] = field(repr=False)

    @property
    def name(self) -> str:
        return self.component.name

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, lines: int = 20) -> str:
        return log_tail(self.component.log_path, self.log_offset, lines)


class StartupError(RuntimeError):
    def __init__(self, component: str, reason: str, log_path: Path | None, tail: str) -> None:
        super().__init__(f"{component}: {reason}")
        self.component = component
        self.reason = reason
        self.log_path = log_path
        self.tail = tail

    def report(self) -> str:
        text = str(self)
        if self.log_path is not None:
            text += f"\nlast lines of {self.log_path}:\n{_indent(self.tail) if self.tail else '  (empty)'}"
        return text


class Interrupted(Exception):
    """A stop was requested while starting."""


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


class Supervisor:
    def __init__(self, stages: Sequence[Sequence[Component]], *, startup_timeout: float = 60.0, say: Say = _say):
        self.stages = [list(stage) for stage in stages]
        self.startup_timeout = startup_timeout
        self.say = say
        self.children: list[list[Child]] = []
        self._stop_requested = asyncio.Event()
        self._force = asyncio.Event()
        self._exits: asyncio.Queue[Child] = asyncio.Queue()
        self._stopping = False
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
        if not self._stopping:
            self._exits.put_nowait(child)

    async def _wait_ready(self, child: Child, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        last_error = "no answer yet"
        while True:
            self._check_interrupted()
            if not self._exits.empty():
                dead = self._exits.get_nowait()
                self._exits.put_nowait(dead)  # still reported by wait() if start() is not the caller
                raise StartupError(
                    dead.name,
                    f"{exit_status(dead.proc.returncode)} while starting",
                    dead.component.log_path,
                    dead.tail(),
                )
            remaining = deadline - loop.time()
            try:
                async with asyncio.timeout(max(0.2, min(5.0, remaining))):
                    await child.component.ready()
                return
            except Exception as err:  # TimeoutError included
                last_error = _describe(err)
            if loop.time() >= deadline:
                raise StartupError(
                    child.name,
                    f"not ready after {self.startup_timeout:g}s ({last_error})",
                    child.component.log_path,
                    child.tail(),
                )
            await asyncio.sleep(0.1)

    # Running -----------------------------------------------------------------------------------

    async def wait(self) -> Child | None:
        """Until a child exits by itself (returned) or a stop is requested (None)."""
        stop = asyncio.ensure_future(self._stop_requested.wait())
        exit_ = asyncio.ensure_future(self._exits.get())
        try:
            await asyncio.wait({stop, exit_}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            exit_.cancel()
        if exit_.done() and not exit_.cancelled():
            return exit_.result()
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
        await child.exited

    # Everything together -----------------------------------------------------------------------

    async def run(self, on_ready: Callable[[Supervisor], None]) -> int:
        """Start, call `on_ready`, run until SIGINT/SIGTERM/SIGHUP (exit code 0) or until a child exits
        or fails to start (1); stop everything in every case."""
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
            dead = await self.wait()
            if dead is None:
                self.say("stopping (press Ctrl-C again to stop immediately)")
                return 0
            self.say(
                f"{dead.name} (pid {dead.pid}) {exit_status(dead.proc.returncode)} unexpectedly; "
                f"last lines of {dead.component.log_path}:\n{_indent(dead.tail()) or '  (empty)'}\nstopping the rest"
            )
            return 1
        finally:
            await self.stop()
            self.say("stopped")
            for sig in signals:
                loop.remove_signal_handler(sig)


def exit_status(code: int | None) -> str:
    if code is None:
        return "is running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _describe(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, grpc.aio.AioRpcError):
        return f"gRPC {err.code().name}: {err.details()}"
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
