"""The fault suite's platform: `ossa up --orchestrators N` on free loopback ports (tests/e2e/platform.py),
`ossa agent serve --handler benchmarks.faults_handler:handle` agents (benchmarks/agents_cli.py),
and the suite's own PostgreSQL and Redis connections for its checks.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from benchmarks.agents_cli import CliAgents
from benchmarks.faults_checks import Db
from benchmarks.faults_handler import MARKERS_ENV
from tests.e2e.agents import agent_token
from tests.e2e.platform import Platform, make_platform, request

ROOT = Path(__file__).resolve().parent.parent
HANDLER = "benchmarks.faults_handler:handle"
CAPABILITY, SLOW_CAPABILITY = "faults.work", "faults.slow"


@dataclass
class Rig:
    platform: Platform
    agents: CliAgents  # the workload's
    slow: CliAgents  # scenario 5's lease holders (none until it runs)
    db: Db
    redis: aioredis.Redis
    lease_seconds: int
    dead: list[str] = field(default_factory=list)  # agents killed with -9

    @property
    def token(self) -> str:
        return self.platform.admin_token

    @property
    def gateway(self) -> str:
        return self.platform.gateway

    def agent_logs(self) -> list[Path]:
        return [group.log_path(name) for group in (self.agents, self.slow) for name in group.procs]

    def pid(self, part: str) -> int:
        pid = self.platform.pids().get(part)
        if pid is None:
            raise RuntimeError(f"`ossa up` printed no PID for {part}:\n{self.platform.log_tail()}")
        return pid

    async def wait_restarted(self, part: str, old: int, timeout: float = 90.0) -> float:
        """Seconds until `ossa up` reported `part` restarted and ready (a new PID)."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if self.platform.pids().get(part, old) != old:
                return time.monotonic() - began
            if self.platform.proc is not None and self.platform.proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{part} was not restarted within {timeout:g}s:\n{self.platform.log_tail()}")

    def kill(self, part: str, sig: signal.Signals = signal.SIGKILL) -> int:
        pid = self.pid(part)
        os.kill(pid, sig)
        return pid

    async def wait_registered(self, names: list[str], timeout: float = 60.0) -> None:
        """Until each named agent is registered (its Work stream opens right after)."""
        deadline = time.monotonic() + timeout
        waiting = list(names)
        while waiting and time.monotonic() < deadline:
            rows = await self.db.fetch("SELECT name FROM agents WHERE name = ANY($1::text[])", waiting)
            waiting = [n for n in waiting if n not in {r["name"] for r in rows}]
            await asyncio.sleep(0.2)
        if waiting:
            tails = "\n".join(self.agents.tail(n) if n in self.agents.procs else self.slow.tail(n) for n in waiting)
            raise RuntimeError(f"agents not registered within {timeout:g}s: {waiting}\n{tails}")

    async def leases_of(self, name: str) -> int:
        [row] = await self.db.fetch(
            """SELECT count(*) AS n FROM tasks t JOIN agents a ON a.id = t.agent_id
                WHERE a.name = $1 AND t.status IN ('assigned', 'running')""",
            name,
        )
        return int(row["n"])

    async def busiest_agent(self) -> str:
        rows = await self.db.fetch(
            """SELECT a.name, count(*) AS n FROM tasks t JOIN agents a ON a.id = t.agent_id
                WHERE t.status IN ('assigned', 'running') AND a.name = ANY($1::text[])
                GROUP BY a.name ORDER BY n DESC LIMIT 1""",
            self.agents.alive(),
        )
        return str(rows[0]["name"]) if rows else self.agents.alive()[0]

    def healthy(self) -> bool:
        try:
            status, _, _ = request(self.gateway, "GET", "/api/v1/health", timeout=3)
        except OSError:
            return False
        return status == 200

    async def close(self) -> None:
        await asyncio.to_thread(self.slow.stop)
        await asyncio.to_thread(self.agents.stop)
        await self.db.close()
        await self.redis.aclose()
        code = await asyncio.to_thread(self.platform.stop)
        if code != 0:
            raise RuntimeError(f"ossa up exited with {code} when stopped:\n{self.platform.log_tail()}")


async def start_rig(work_dir: Path, agents: int, slots: int, orchestrators: int = 2, lease_seconds: int = 10,
                    env: dict[str, str] | None = None, log_level: str = "info") -> Rig:  # fmt: skip
    """Start the platform and the workload's agents (registered and connected) in `work_dir`."""
    await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
    platform = make_platform(work_dir / "data", env)
    await asyncio.to_thread(platform.start, "--orchestrators", str(orchestrators))
    agent_env = {**platform.env, MARKERS_ENV: str(work_dir / "markers"),
                 "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), platform.env.get("PYTHONPATH")]))}  # fmt: skip

    def token_for(name: str) -> str:
        return agent_token(platform, name)

    def group(capability: str, count: int, slots_: int, prefix: str) -> CliAgents:
        return CliAgents(platform.gateway, capability, count, slots_, work_dir / "agents", token_for, agent_env,
                         handler=HANDLER, log_level=log_level, prefix=prefix)  # fmt: skip

    db = Db(platform.database_url())
    redis = aioredis.Redis(host="127.0.0.1", port=platform.port("redis"))
    rig = Rig(platform, group(CAPABILITY, agents, slots, "faults-agent"), group(SLOW_CAPABILITY, 0, 16, "faults-slow"),
              db, redis, lease_seconds)  # fmt: skip
    try:
        rig.agents.start()
        await rig.wait_registered(list(rig.agents.procs))
    except BaseException:
        await rig.close()
        raise
    return rig


def rss_table(rig: Rig) -> dict[str, tuple[int, int]]:
    """Every process's (RSS, private anonymous RSS) in KiB: `ossa up`, each part it runs (PostgreSQL's
    backends summed as `postgres backends`), each agent and this process; by name."""
    parts = {pid: name for name, pid in rig.platform.pids().items()}
    if rig.platform.proc is not None:
        parts[rig.platform.proc.pid] = "ossa up"
    for group in (rig.agents, rig.slow):
        parts.update({proc.pid: name for name, proc in group.procs.items() if proc.poll() is None})
    parts[os.getpid()] = "faults.py (load, checks)"
    out: dict[str, tuple[int, int]] = {}
    for pid, name in parts.items():
        if (mem := _memory(pid)) is not None:
            out[name] = mem
    postgres = next((p for p, n in parts.items() if n == "postgres"), None)
    if postgres is not None:
        backends = [m for child in _children(postgres) if (m := _memory(child)) is not None]
        out["postgres backends"] = (sum(m[0] for m in backends), sum(m[1] for m in backends))
    return out


def _memory(pid: int) -> tuple[int, int] | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields: dict[str, Any] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            fields[key] = int(value.split()[0])
    return fields.get("VmRSS", 0), fields.get("RssAnon", 0)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
