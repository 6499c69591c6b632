"""Start the whole platform exactly as `ossa up` does, on free loopback ports, for e2e tests."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from ossa_runtime.auth.client import bearer_interceptors

PORT_VARS = (
    "OSSA_GATEWAY_PORT",
    "OSSA_ENVOY_ADMIN_PORT",
    "OSSA_GATEWAY_GRPC_PORT",
    "OSSA_REGISTRY_PORT",
    "OSSA_ORCHESTRATOR_PORT",
    "OSSA_MONITORING_PORT",
    "OSSA_SEARCH_PORT",
    "OSSA_POSTGRES_PORT",
    "OSSA_REDIS_PORT",
    "OSSA_GATEWAY_METRICS_PORT",
    "OSSA_REGISTRY_METRICS_PORT",
    "OSSA_ORCHESTRATOR_METRICS_PORT",
    "OSSA_MONITORING_METRICS_PORT",
    "OSSA_SEARCH_METRICS_PORT",
)


# What `ossa up` prints: its table once it is up, then one line per restart of a part.
TABLE_ROW = re.compile(r"^  (\S+)\s+\S+\s+(\d+)\s+/", re.MULTILINE)
RESTARTED = re.compile(r"^(\S+) restarted \(pid (\d+)\) and ready$", re.MULTILINE)

# Gateway address → the admin token its `ossa up` wrote (set once the platform is healthy).
ADMIN_TOKENS: dict[str, str] = {}


def free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def ossa_executable() -> str:
    candidate = Path(sys.executable).parent / "ossa"
    return str(candidate) if candidate.exists() else "ossa"


@dataclass
class Platform:
    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    tls: ssl.SSLContext | None = None  # HTTPS to the gateway (a platform with OSSA_TLS_CERT_FILE)
    output: Path = field(init=False)

    def __post_init__(self) -> None:
        self.output = self.data_dir.parent / f"{self.data_dir.name}-ossa-up.log"

    def port(self, name: str) -> int:
        return int(self.env[f"OSSA_{name.upper()}_PORT"])

    @property
    def gateway(self) -> str:
        return f"127.0.0.1:{self.port('gateway')}"

    @property
    def registry(self) -> str:
        return f"127.0.0.1:{self.port('registry')}"

    def start(self, *args: str, timeout: float = 120.0) -> None:
        with self.output.open("ab") as out:
            self.proc = subprocess.Popen(
                [ossa_executable(), "up", "--data-dir", str(self.data_dir), *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ossa up exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status, _, _ = request(self.gateway, "GET", "/api/v1/health", timeout=2, tls=self.tls)
                if status == 200:
                    ADMIN_TOKENS[self.gateway] = self.admin_token
                    return
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"platform not healthy after {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    @property
    def admin_token(self) -> str:
        """The admin token `ossa up` wrote to the data directory ("" when auth is off)."""
        path = self.data_dir / "admin.token"
        return path.read_text().strip() if path.exists() else ""

    def database_url(self) -> str:
        """The platform's PostgreSQL DSN: OSSA_DATABASE_URL, else the embedded server's (user ossa,
        database ossa_isolated; its password is in the data directory once the platform has started)."""
        if self.env.get("OSSA_DATABASE_URL"):
            return self.env["OSSA_DATABASE_URL"]
        from ossa_cli.postgres import EmbeddedPostgres

        return EmbeddedPostgres.in_data_dir(self.data_dir, self.port("postgres")).url()

    def channel(self, target: str | None = None, token: str | None = None) -> grpc.aio.Channel:
        """A grpc.aio channel (default: to the gateway) sending `token` (default: the admin token)."""
        bearer = self.admin_token if token is None else token
        return grpc.aio.insecure_channel(target or self.gateway, interceptors=bearer_interceptors(bearer))

    def pids(self) -> dict[str, int]:
        """Each part's current PID (`postgres`, `redis`, `orchestrator[2]`, ...), from what `ossa up`
        printed: its table once it is up, then a "<part> restarted (pid N) and ready" line per restart."""
        text = self.output.read_text(errors="replace") if self.output.exists() else ""
        found = {name: int(pid) for name, pid in TABLE_ROW.findall(text)}
        found.update((name, int(pid)) for name, pid in RESTARTED.findall(text))
        return found

    def log_tail(self, lines: int = 60) -> str:
        text = self.output.read_text(errors="replace") if self.output.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def make_platform(data_dir: Path, extra_env: dict[str, str] | None = None) -> Platform:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSSA_")}
    env.update(zip(PORT_VARS, map(str, free_ports(len(PORT_VARS))), strict=True))
    env["OSSA_GATEWAY_HOST"] = "127.0.0.1"
    env.update(extra_env or {})
    return Platform(data_dir, env)


def request(
    target: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
    conn: http.client.HTTPConnection | None = None,
    tls: ssl.SSLContext | None = None,
    token: str | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One HTTP request; returns (status, lower-cased headers, parsed JSON or raw text or None).

    It sends `authorization: Bearer <token>`; `token` defaults to the admin token of the platform
    at `target` (ADMIN_TOKENS), "" sends none, and an `authorization` in `headers` wins.
    """
    host, port = target.rsplit(":", 1)
    own = conn is None
    if conn is None and tls is not None:
        conn = http.client.HTTPSConnection(host, int(port), timeout=timeout, context=tls)
    conn = conn or http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        hdrs = {"content-type": "application/json"} if payload is not None else {}
        bearer = ADMIN_TOKENS.get(target, "") if token is None else token
        if bearer and not any(k.lower() == "authorization" for k in headers or {}):
            hdrs["authorization"] = f"Bearer {bearer}"
        hdrs.update(headers or {})
        conn.request(method, path, body=payload, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        resp_headers = {k.lower(): v for k, v in resp.getheaders()}
        parsed: Any = None
        if data:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = data.decode(errors="replace")
        return resp.status, resp_headers, parsed
    finally:
        if own:
            conn.close()
