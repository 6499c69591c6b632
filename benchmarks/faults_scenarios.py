"""The faults, one per scenario row. Each injection records when the fault hit (`Run.fault_at`, wall
clock) and waits until what `ossa up` restarts is back (or the fault has run its course); the load
keeps running meanwhile.

    1   orchestrator[1] kill -9            one of the two orchestrator processes, mid batch
    2a  postgres SIGINT                    fast shutdown of the postmaster; `ossa up` starts it again
    2b  postgres kill -9                   crash recovery from the WAL
    3a  redis kill -9                      Valkey restarted from its append-only file
    3b  redis FLUSHALL                     the mirror, heartbeat keys and everything else wiped
    4   envoy kill -9                      every agent's streams and the load generator's calls cut
    5a  agent SIGSTOP > lease, SIGCONT     a hung agent (no FIN): its leases expire, its late reports are refused
    5b  agent kill -9 holding 16 leases    its leases expire and go to another agent
    6   registry kill -9, 200 heartbeating the crowd reconnects by itself; nobody is marked offline
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from benchmarks.faults_heartbeats import HeartbeatFleet
from benchmarks.faults_load import publish, slow_definition, start_many
from benchmarks.faults_rig import SLOW_CAPABILITY, Rig

HOLD = 16  # leases the agent of 5b holds when it is killed
SLOW_MS = 8000  # how long each of those tasks runs
CROWD = 200  # heartbeating agents in scenario 6


@dataclass
class Run:
    """One scenario while it runs: the workflows it checks, when the fault hit, what it noted."""

    rig: Rig
    key: str
    workflows: dict[str, str]
    fault_at: float = 0.0
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # found by the injection itself

    def hit(self) -> None:
        self.fault_at = time.time()


Inject = Callable[[Run], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    inject: Inject


def _restart(part: str, sig: signal.Signals) -> Inject:
    async def inject(run: Run) -> None:
        run.hit()
        old = run.rig.kill(part, sig)
        took = await run.rig.wait_restarted(part, old)
        run.notes.append(f"{part} back in {took:.1f}s")

    return inject


async def flushall(run: Run) -> None:
    run.hit()
    await run.rig.redis.flushall()


def registry_first(rig: Rig) -> str:
    """`registry`, or `registry[1]` when it runs several processes."""
    return min(name for name in rig.platform.pids() if name.startswith("registry"))


async def agent_stopped(run: Run) -> None:
    """SIGSTOP the agent holding most leases for its lease time + 5 s, then SIGCONT."""
    rig = run.rig
    for _ in range(50):  # a moment when it holds some (each step takes a few ms), within 5 s
        name = await rig.busiest_agent()
        if (held := await rig.leases_of(name)) > 0:
            break
        await asyncio.sleep(0.1)
    pause = rig.lease_seconds + 5
    run.hit()
    rig.agents.signal(name, signal.SIGSTOP)
    try:
        await asyncio.sleep(pause)
    finally:
        rig.agents.signal(name, signal.SIGCONT)
    run.notes.append(f"{name} held {held} leases, stopped {pause}s")


async def agent_killed_holding(run: Run) -> None:
    """A fresh agent with 16 slots takes 16 slow tasks and is killed with -9 holding all of them;
    a new one takes over once the leases expire."""
    rig = run.rig
    await asyncio.to_thread(rig.slow.stop, 15.0, rig.slow.alive())  # an earlier run's: idle, and in the way
    holder = rig.slow.spawn()
    await rig.wait_registered([holder])
    run.workflows.update(await publish(rig.gateway, rig.token, {"slow": slow_definition(SLOW_CAPABILITY,
                                       rig.lease_seconds, SLOW_MS)}, f"{run.key}-slow"))  # fmt: skip
    await start_many(rig.gateway, rig.token, run.workflows["slow"], HOLD)
    held = await _wait_leases(rig, holder, 60.0)
    run.hit()
    rig.slow.signal(holder, signal.SIGKILL)
    rig.dead.append(holder)
    if held < HOLD:
        run.problems.append(f"the holder got only {held} of {HOLD} leases within 60s")
    replacement = rig.slow.spawn()
    run.notes.append(f"{holder} killed holding {held} leases; {replacement} takes over")


async def _wait_leases(rig: Rig, agent: str, timeout: float) -> int:
    """Poll until the agent holds HOLD leases (or `timeout`); how many it holds."""
    deadline = time.monotonic() + timeout
    held = await rig.leases_of(agent)
    while held < HOLD and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        held = await rig.leases_of(agent)
    return held


async def registry_under_heartbeats(run: Run) -> None:
    """200 agents heartbeat through Envoy; the registry is killed; all of them must beat again and
    none may be marked offline."""
    rig = run.rig
    fleet = HeartbeatFleet(rig.gateway, rig.token, CROWD)
    try:
        await fleet.register()
        fleet.start()
        began = time.time()
        if await fleet.wait_beating_since(began, 60) is None:
            run.problems.append(f"only {fleet.beating_since(began)}/{CROWD} heartbeating before the fault")
        part = registry_first(rig)
        run.hit()
        old = rig.kill(part)
        took = await rig.wait_restarted(part, old)
        back = run.fault_at + took
        again = await fleet.wait_beating_since(back, 60)
        if again is None:
            run.problems.append(f"{fleet.beating_since(back)}/{CROWD} heartbeating again 60s after the restart")
        else:
            run.notes.append(f"{part} back in {took:.1f}s; all {CROWD} beating again {took + again:.1f}s after it died")
        rows = await rig.db.fetch(
            "SELECT count(*) AS n FROM agents WHERE id = ANY($1::uuid[]) AND status = 'offline'", fleet.ids
        )
        if rows[0]["n"]:
            run.problems.append(f"{rows[0]['n']} heartbeating agents were marked offline")
        run.notes.append(f"{fleet.streams} heartbeat streams opened")
    finally:
        await fleet.stop()
        await fleet.delete()


SCENARIOS = (
    Scenario("1", "orchestrator[1] kill -9", _restart("orchestrator[1]", signal.SIGKILL)),
    Scenario("2a", "postgres SIGINT (fast shutdown)", _restart("postgres", signal.SIGINT)),
    Scenario("2b", "postgres kill -9", _restart("postgres", signal.SIGKILL)),
    Scenario("3a", "redis kill -9", _restart("redis", signal.SIGKILL)),
    Scenario("3b", "redis FLUSHALL", flushall),
    Scenario("4", "envoy kill -9", _restart("envoy", signal.SIGKILL)),
    Scenario("5a", "agent SIGSTOP > lease, SIGCONT", agent_stopped),
    Scenario("5b", f"agent kill -9 holding {HOLD} leases", agent_killed_holding),
    Scenario("6", f"registry kill -9, {CROWD} heartbeating", registry_under_heartbeats),
)


def select(spec: str) -> list[Scenario]:
    """Scenarios by key or group: "1,2,3" (2 = 2a and 2b), "5b", "all"."""
    if spec in ("", "all"):
        return list(SCENARIOS)
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    chosen = [s for s in SCENARIOS if any(s.key == w or s.key.rstrip("ab") == w for w in wanted)]
    unknown = [w for w in wanted if not any(s.key == w or s.key.rstrip("ab") == w for s in SCENARIOS)]
    if unknown:
        raise ValueError(f"unknown scenario {', '.join(unknown)} (one of {', '.join(s.key for s in SCENARIOS)})")
    return chosen
