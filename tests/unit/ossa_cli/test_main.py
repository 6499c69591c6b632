"""`ossa` argument parsing, settings overrides, the plan `ossa up` runs, and its one-line errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ossa_cli.errors import UsageError
from ossa_cli.main import build_parser
from ossa_cli.plan import build_plan
from ossa_cli.up import port_fields, prepare_up, settings_from_args, with_free_ports
from ossa_runtime.settings import Settings


def parse(*argv: str) -> Settings:
    return settings_from_args(build_parser().parse_args(["up", *argv]), {})


def test_up_defaults_come_from_settings() -> None:
    assert parse() == Settings.from_env({})


def test_every_port_setting_has_a_flag() -> None:
    s = parse(*(arg for i, name in enumerate(port_fields()) for arg in (f"--{name.replace('_', '-')}", str(20000 + i))))
    assert [getattr(s, name) for name in port_fields()] == [20000 + i for i in range(len(port_fields()))]
    assert {"gateway_port", "envoy_admin_port", "registry_port", "postgres_port", "redis_port"} <= set(port_fields())


def test_flags_override_the_environment(tmp_path: Path) -> None:
    env = {"OSSA_GATEWAY_PORT": "4100", "OSSA_REGISTRY_PORT": "4011", "OSSA_DATA_DIR": "/elsewhere"}
    args = build_parser().parse_args(["up", "--data-dir", str(tmp_path), "--gateway-port", "5100"])
    s = settings_from_args(args, env)
    assert (s.data_dir, s.gateway_port, s.registry_port) == (tmp_path, 5100, 4011)


def test_registry_workers_flag() -> None:
    assert parse("--registry-workers", "3").registry_workers == 3


@pytest.mark.parametrize("argv", [["up", "--gateway-port", "70000"], ["up", "--registry-workers", "0"], []])
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_port_zero_becomes_a_free_port() -> None:
    s = with_free_ports(Settings.from_env({}, gateway_port=0, registry_port=0))
    assert s.gateway_port != 0 and s.registry_port != 0 and s.gateway_port != s.registry_port
    assert s.postgres_port == 5433


def test_plan_starts_datastores_then_services_then_envoy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ossa_runtime.topology.ServiceInfo.installed", lambda self: not self.optional)
    plan = build_plan(Settings.from_env({}, data_dir=tmp_path, registry_workers=2))
    names = [[c.name for c in stage] for stage in plan.stages]
    assert names == [["postgres"], ["redis"], ["registry[1]", "registry[2]", "gateway"], ["envoy"]]
    claimed = {c.component: c.port for c in plan.claims}
    assert claimed == {
        "postgres": 5433,
        "redis": 6382,
        "registry": 3011,
        "registry metrics": 9111,
        "gateway": 3010,
        "gateway metrics": 9110,
        "envoy": 3100,
        "envoy admin": 9901,
        # Each registry worker's own port, which Envoy balances over (test_plan.py).
        "registry[1]": plan.worker_ports["registry"][0],
        "registry[2]": plan.worker_ports["registry"][1],
    }
    assert all(c.log_path.parent == tmp_path / "logs" for stage in plan.stages for c in stage)
    # Before a restart after a crash, PostgreSQL's leftovers are cleared; nothing else needs that.
    assert plan.postgres is not None and plan.stages[0][0].recover == plan.postgres.clear_leftovers
    assert all(c.recover is None for stage in plan.stages[1:] for c in stage)


def test_plan_adds_optional_services_once_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ossa_runtime.topology.ServiceInfo.installed", lambda self: self.package != "orchestrator_svc")
    plan = build_plan(Settings.from_env({}, data_dir=tmp_path))
    assert [c.name for c in plan.stages[2]] == ["registry", "gateway", "monitoring", "search"]
    assert list(plan.stages[2][2].argv())[-2:] == ["-m", "monitoring_svc"]
    assert any(c.component == "monitoring" and c.port == 3013 for c in plan.claims)


def test_plan_uses_configured_servers_instead_of_embedded_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ossa_runtime.topology.ServiceInfo.installed", lambda self: not self.optional)
    s = Settings.from_env({}, data_dir=tmp_path, database_url="postgresql://u:p@db:5432/x", redis_url="redis://r:1/0")
    plan = build_plan(s)
    assert [c.name for c in plan.stages[0]] == ["registry", "gateway"]
    assert {c.component for c in plan.claims}.isdisjoint({"postgres", "redis"})
    env = plan.service_env("registry")
    assert env["OSSA_DATABASE_URL"] == "postgresql://u:p@db:5432/x"
    assert env["OSSA_REDIS_URL"] == "redis://r:1/0"
    assert env["OSSA_SERVICE_NAME"] == "ossa-registry"
    assert env["OSSA_DATA_DIR"] == str(tmp_path)


def test_service_children_get_worker_count_and_module(tmp_path: Path) -> None:
    s = Settings.from_env({}, data_dir=tmp_path, database_url="postgresql://h/x", redis_url="redis://h/0")
    plan = build_plan(s.replace(registry_workers=3))
    registry = plan.stages[0][0]
    assert list(registry.argv())[-3:] == [sys.executable, "-m", "registry_svc"]
    assert registry.env is not None and registry.env()["OSSA_REGISTRY_WORKERS"] == "3"


def test_prepare_up_refuses_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        args = build_parser().parse_args(["up", "--data-dir", str(tmp_path / "d"), "--registry-port", str(port)])
        with pytest.raises(UsageError, match=f"registry: port {port} "):
            prepare_up(args, {})
    assert not (tmp_path / "d").exists()  # nothing created before the checks pass


def test_one_platform_per_data_directory(tmp_path: Path) -> None:
    args = build_parser().parse_args(["up", "--data-dir", str(tmp_path), *_all_ports_free()])
    plan, lock = prepare_up(args, {})
    try:
        assert lock.held and plan.logs_dir.is_dir()
        with pytest.raises(UsageError, match=rf"another `ossa up` \(pid {os.getpid()}\) is already using {tmp_path}"):
            prepare_up(args, {})
    finally:
        lock.release()
    _, again = prepare_up(args, {})
    again.release()


def _all_ports_free() -> list[str]:
    return [arg for name in port_fields() for arg in (f"--{name.replace('_', '-')}", "0")]


def test_prepare_up_reports_invalid_settings(tmp_path: Path) -> None:
    args = build_parser().parse_args(["up", "--data-dir", str(tmp_path)])
    with pytest.raises(UsageError, match="OSSA_LOG_LEVEL=loud"):
        prepare_up(args, {"OSSA_LOG_LEVEL": "loud"})


def _ossa() -> list[str]:
    script = Path(sys.executable).parent / "ossa"  # the console script, as users run it
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from ossa_cli.main import main; sys.exit(main())"]


def _env(**extra: str) -> dict[str, str]:
    """Every other port 0 (free), so that only the port under test can be busy."""
    env = {"PATH": "/usr/bin:/bin", **{f"OSSA_{name.upper()}": "0" for name in port_fields()}}
    env.update(extra)
    return env


def test_ossa_up_with_a_busy_port_exits_2_at_once(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        started = time.monotonic()
        proc = subprocess.run(
            [*_ossa(), "up", "--gateway-port", str(port), "--data-dir", str(tmp_path / "data")],
            capture_output=True,
            text=True,
            timeout=30,
            env=_env(),
        )
    assert proc.returncode == 2, proc.stderr
    assert time.monotonic() - started < 10
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(port) in lines[0] and "envoy" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()


def test_ossa_up_with_bad_settings_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*_ossa(), "up", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        env=_env(OSSA_REGISTRY_PORT="many"),
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "ossa: error: OSSA_REGISTRY_PORT='many' is not a valid int"
