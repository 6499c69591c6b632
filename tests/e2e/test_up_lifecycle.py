"""`ossa up` as a user runs it: data survives a restart, and real servers replace the embedded ones."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest

from tests.e2e.platform import make_platform, ossa_executable, request

pytestmark = pytest.mark.e2e


def test_data_persists_across_restarts(tmp_path: Path) -> None:
    platform = make_platform(tmp_path / "data")
    platform.start()
    try:
        status, _, agent = request(
            platform.gateway,
            "POST",
            "/api/v1/agents",
            {"name": f"keeper-{secrets.token_hex(3)}", "type": "governor", "version": "3.0.0"},
        )
        assert status == 201, agent
    finally:
        assert platform.stop() == 0, platform.log_tail()
    platform.start()
    try:
        status, _, again = request(platform.gateway, "GET", f"/api/v1/agents/{agent['id']}")
        assert status == 200 and again["name"] == agent["name"]
    finally:
        assert platform.stop() == 0, platform.log_tail()


def test_external_servers_replace_embedded_ones(tmp_path: Path, postgres_url: str, redis_url: str) -> None:
    platform = make_platform(tmp_path / "data", {"OSSA_DATABASE_URL": postgres_url, "OSSA_REDIS_URL": redis_url})
    platform.start()
    try:
        status, _, report = request(platform.gateway, "GET", "/api/v1/health")
        assert status == 200, report
        targets = {c["name"]: c["target"] for c in report["components"]}
        assert targets["postgres"] == postgres_url.rsplit("@", 1)[1].split("/")[0]
        assert targets["redis"] == redis_url.split("//", 1)[1].split("/")[0]
    finally:
        assert platform.stop() == 0, platform.log_tail()
    assert not (tmp_path / "data" / "postgres").exists()
    assert not (tmp_path / "data" / "redis").exists()


def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        platform = make_platform(tmp_path / "data", {"OSSA_REGISTRY_PORT": str(port)})
        out = subprocess.run(
            [ossa_executable(), "up", "--data-dir", str(tmp_path / "data")],
            env=platform.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 2
    assert str(port) in out.stderr and "Traceback" not in out.stderr
