"""Real agent processes (`ossa agent serve`) for e2e tests."""

from __future__ import annotations

import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ossa_runtime.auth.tokens import mint_token
from ossa_runtime.settings import Settings
from tests.e2e.platform import Platform, ossa_executable, request


def platform_token(platform: Platform, role: str, sub: str, type: str = "user") -> str:
    """A token signed with the secret `ossa up` generated in the platform's data directory
    ("" for a platform with authentication off: it has none)."""
    secret_file = platform.data_dir / "jwt.secret"
    if not secret_file.exists():
        return ""
    settings = Settings.from_env({}, jwt_secret=secret_file.read_text().strip())
    token, _ = mint_token(settings, sub=sub, role=role, type=type, ttl_seconds=3600)
    return token


def agent_token(platform: Platform, name: str) -> str:
    """An operator-role `agent` token for the agent `name` (`ossa token create --type agent`)."""
    return platform_token(platform, "operator", name, type="agent")


def admin_token(platform: Platform) -> str:
    """A fresh admin token (its own jti: revoking it leaves the platform's admin.token valid)."""
    return platform_token(platform, "admin", "e2e-admin")


class AgentProcess:
    def __init__(
        self, platform: Platform, log_dir: Path, capability: str, handler: str, slots: int = 1, type: str = "worker"
    ) -> None:
        self.name = f"{handler.rsplit(':', 1)[-1]}-{secrets.token_hex(3)}"
        self.log = log_dir / f"agent-{self.name}.log"
        argv = [
            ossa_executable(), "agent", "serve", "--name", self.name, "--type", type,
            "--capability", capability, "--handler", handler, "--slots", str(slots), "--gateway", platform.gateway,
        ]  # fmt: skip
        # An agent token naming this agent (by name), like `ossa token create --type agent --sub NAME`.
        env = {**platform.env, "OSSA_TOKEN": agent_token(platform, self.name)}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


@contextmanager
def agents(platform: Platform, log_dir: Path, *specs: tuple[Any, ...]) -> Iterator[list[AgentProcess]]:
    """Start one agent per (capability, handler, slots[, type]); stop them all afterwards."""
    started = [AgentProcess(platform, log_dir, *spec) for spec in specs]
    try:
        yield started
    finally:
        for agent in started:
            agent.stop()


def run_workflow(platform: Platform, steps: list[dict[str, Any]], **start: Any) -> tuple[str, str]:
    name = f"e2e-{secrets.token_hex(4)}"
    status, _, workflow = request(
        platform.gateway,
        "POST",
        "/api/v1/workflows",
        {"name": name, "version": "1.0.0", "definition": {"steps": steps}},
    )
    assert status == 201, workflow
    status, _, _ = request(platform.gateway, "POST", f"/api/v1/workflows/{workflow['id']}/publish", {})
    assert status == 200
    return workflow["id"], start_execution(platform, workflow["id"], **start)


def start_execution(platform: Platform, workflow_id: str, **start: Any) -> str:
    status, _, started = request(platform.gateway, "POST", "/api/v1/orchestrate", {"workflow_id": workflow_id, **start})
    assert status == 202, started
    execution_id: str = started["execution_id"]
    return execution_id


def wait_execution(platform: Platform, execution_id: str, *statuses: str, seconds: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    execution: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _, _, execution = request(platform.gateway, "GET", f"/api/v1/executions/{execution_id}")
        if execution["status"] in statuses:
            return execution
        time.sleep(0.1)
    raise AssertionError(f"execution stayed {execution.get('status')}: {execution}")


def tasks(platform: Platform, execution_id: str) -> list[dict[str, Any]]:
    status, _, listed = request(platform.gateway, "GET", f"/api/v1/executions/{execution_id}/tasks")
    assert status == 200, listed
    return list(listed)


def task(platform: Platform, task_id: str) -> dict[str, Any]:
    status, _, found = request(platform.gateway, "GET", f"/api/v1/tasks/{task_id}")
    assert status == 200, found
    return dict(found)


def wait_task(platform: Platform, execution_id: str, predicate: Any, seconds: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for t in tasks(platform, execution_id):
            if predicate(t):
                return t
        time.sleep(0.1)
    raise AssertionError(f"no task matched: {tasks(platform, execution_id)}")
