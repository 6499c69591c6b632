"""What `ossa up` does for /metrics: claims the ports, and sets up multiprocess mode for several workers."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import yaml

from ossa_cli.errors import UsageError
from ossa_cli.main import build_parser
from ossa_cli.plan import build_plan
from ossa_cli.up import prepare_up
from ossa_runtime.settings import Settings


def external(tmp_path: Path, **changes: object) -> Settings:
    s = Settings.from_env({}, data_dir=tmp_path, database_url="postgresql://h/x", redis_url="redis://h/0")
    return s.replace(**changes)


def test_every_service_claims_its_metrics_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ossa_runtime.topology.ServiceInfo.installed", lambda self: True)
    plan = build_plan(external(tmp_path))
    claims = {c.component: (c.port, c.setting) for c in plan.claims if c.component.endswith(" metrics")}
    assert claims == {
        "registry metrics": (9111, "registry_metrics_port"),
        "gateway metrics": (9110, "gateway_metrics_port"),
        "orchestrator metrics": (9112, "orchestrator_metrics_port"),
        "monitoring metrics": (9113, "monitoring_metrics_port"),
        "search metrics": (9114, "search_metrics_port"),
    }


def test_a_busy_metrics_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        argv = ["up", "--data-dir", str(tmp_path / "d"), "--registry-metrics-port", str(port)]
        args = build_parser().parse_args(argv)
        with pytest.raises(UsageError, match=f"registry metrics: port {port} .*--registry-metrics-port"):
            prepare_up(args, {})


def test_metrics_port_clashing_with_another_port_is_refused(tmp_path: Path) -> None:
    args = build_parser().parse_args(["up", "--data-dir", str(tmp_path), "--orchestrator-metrics-port", "3011"])
    with pytest.raises(UsageError, match="both configured to use port 3011"):
        prepare_up(args, {})


def test_several_workers_share_one_multiprocess_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/somewhere/else")  # the caller's own is never used
    plan = build_plan(external(tmp_path, registry_workers=3))
    workers = [c for c in plan.stages[0] if c.name.startswith("registry")]
    gateway = next(c for c in plan.stages[0] if c.name == "gateway")
    envs = [c.env() for c in workers if c.env is not None]
    assert [e["OSSA_WORKER_INDEX"] for e in envs] == ["0", "1", "2"]
    assert {e["PROMETHEUS_MULTIPROC_DIR"] for e in envs} == {str(tmp_path / "metrics" / "registry")}
    assert gateway.env is not None and "PROMETHEUS_MULTIPROC_DIR" not in gateway.env()  # one process: in memory
    assert workers[0].prepare is not None and all(c.prepare is None for c in workers[1:])
    stale = tmp_path / "metrics" / "registry" / "counter_1.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    workers[0].prepare()  # before any worker starts: an empty directory
    assert (tmp_path / "metrics" / "registry").is_dir() and not stale.exists()


def test_each_worker_has_its_own_port_and_envoy_balances_over_them(tmp_path: Path) -> None:
    plan = build_plan(external(tmp_path, registry_workers=2, orchestrator_workers=3))
    services = plan.stages[0]
    for name, count in (("registry", 2), ("orchestrator", 3)):
        ports = plan.worker_ports[name]
        assert len(set(ports)) == count and all(ports)
        envs = [c.env() for c in services if c.name.startswith(name) and c.env is not None]
        assert [int(e["OSSA_WORKER_PORT"]) for e in envs] == ports
        assert {c.port for c in plan.claims if c.component.startswith(f"{name}[")} == set(ports)
    single = next(c for c in services if c.name == "gateway")
    assert single.env is not None and "OSSA_WORKER_PORT" not in single.env()
    envoy = plan.stages[-1][0]
    assert envoy.prepare is not None
    envoy.prepare()
    config = yaml.safe_load((plan.envoy_dir / "envoy.yaml").read_text())
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    dialled = [e["endpoint"]["address"]["socket_address"]["port_value"]
               for e in clusters["orchestrator"]["load_assignment"]["endpoints"][0]["lb_endpoints"]]  # fmt: skip
    assert dialled == plan.worker_ports["orchestrator"]


def test_one_worker_has_no_worker_port(tmp_path: Path) -> None:
    plan = build_plan(external(tmp_path, registry_workers=1, orchestrator_workers=1))
    assert plan.worker_ports == {}
    assert all(c.env is None or "OSSA_WORKER_PORT" not in c.env() for c in plan.stages[0])


def test_worker_ports_are_never_a_port_the_settings_name(
    tmp_path: Path, offered_ports: Callable[[Iterable[int]], None]
) -> None:
    """The OS may offer, for a worker, a port that is free now because the component configured for it
    (Envoy on the gateway port, say) has not started yet: the plan skips it. Seen as an `ossa up`
    refusing to start ("orchestrator[1] and envoy are both configured to use port ...")."""
    s = external(tmp_path, gateway_port=41001, orchestrator_metrics_port=41002, orchestrator_workers=2)
    offered_ports(range(41001, 41100))
    plan = build_plan(s)
    workers = [p for ports in plan.worker_ports.values() for p in ports]
    assert workers and not set(workers) & {41001, 41002}
    assert len(set(workers)) == len(workers)
