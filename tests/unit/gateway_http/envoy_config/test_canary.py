"""istio/ translated into the gateway's Envoy config (gateway_http/envoy_config/canary.py), and the
per-service upstream hosts containers use. `envoy --mode validate` checks every rewritten config."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway_http.envoy_config.binary import validate_envoy_config
from gateway_http.envoy_config.canary import (
    CanaryError,
    TrafficPolicy,
    apply_canary,
    load_policy,
    read_config,
    retarget_upstreams,
    write_config,
)
from gateway_http.envoy_config.render import render_envoy_config
from ossa_cli.main import main
from ossa_runtime.settings import Settings
from ossa_runtime.topology import ORCHESTRATOR, REGISTRY

ISTIO = Path(__file__).resolve().parents[4] / "istio"
TARGETS = {"v1": ("127.0.0.1", 3010), "v2": ("127.0.0.1", 4010)}


def routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    result: list[dict[str, Any]] = hcm["route_config"]["virtual_hosts"][0]["routes"]
    return result


def clusters(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in config["static_resources"]["clusters"]}


def endpoint(cluster: dict[str, Any]) -> tuple[str, int]:
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    return address["address"], address["port_value"]


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    return render_envoy_config(Settings.from_env({}, data_dir=tmp_path), tmp_path / "envoy")


def copy_istio(tmp_path: Path, edit: Any) -> Path:
    target = tmp_path / "istio"
    shutil.copytree(ISTIO, target, ignore=shutil.ignore_patterns("schemas"))
    vs = yaml.safe_load((target / "virtual-service.yaml").read_text())
    edit(vs)
    (target / "virtual-service.yaml").write_text(yaml.safe_dump(vs))
    return target


def test_gateway_routes_split_by_the_virtual_service(rendered: Path) -> None:
    config = apply_canary(read_config(rendered), load_policy(ISTIO), TARGETS)
    write_config(rendered, config)
    validate_envoy_config(rendered)
    split = [r for r in routes(config) if r["match"].get("prefix") == "/ossa.gateway.v1."]
    assert len(split) == 2
    header, default = split
    assert header["match"]["headers"] == [{"name": "canary", "string_match": {"exact": "true"}}]
    assert header["route"]["cluster"] == "gateway-v2"
    assert "headers" not in default["match"]
    assert default["route"]["weighted_clusters"] == {
        "clusters": [{"name": "gateway-v1", "weight": 90}, {"name": "gateway-v2", "weight": 10}]
    }
    assert default["route"]["timeout"] == "15s"  # the original route's action is kept
    assert endpoint(clusters(config)["gateway-v2"]) == ("127.0.0.1", 4010)
    assert not any(r.get("route", {}).get("cluster") == "gateway" for r in routes(config))
    registry = [r for r in routes(config) if r["match"].get("prefix") == "/ossa.registry.v1."]
    assert registry and registry[0]["route"]["cluster"] == "registry"


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda vs: vs["spec"]["http"][1]["route"][0].update(weight=80), "add up to 90, not 100"),
        (lambda vs: vs["spec"]["http"][0]["route"][0]["destination"].update(subset="v3"), "'v3' is not a subset"),
        (lambda vs: vs["spec"]["http"][0]["match"][0].update(uri={"prefix": "/x"}), "uri cannot be translated"),
        (lambda vs: vs["spec"]["http"][0].update(retries={"attempts": 3}), "retries cannot be translated"),
        (lambda vs: vs["spec"]["http"][0]["match"][0]["headers"]["canary"].update(prefix="t"), "exactly one of"),
        (lambda vs: vs["spec"]["http"][1]["route"][0].update(weight="ninety"), "must be an integer"),
        (lambda vs: vs["spec"].update(hosts=["other"]), "no VirtualService for host 'ossa-gateway'"),
    ],
)
def test_untranslatable_rules_are_refused_naming_the_field(tmp_path: Path, edit: Any, needle: str) -> None:
    with pytest.raises(CanaryError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        load_policy(copy_istio(tmp_path, edit))


def test_a_canary_of_the_orchestrator_splits_its_calls_and_its_streams(rendered: Path) -> None:
    """Both clusters of the orchestrator (calls, and the streams' copy: streams.py) get a copy per
    subset, and both kinds of route are split between them."""
    gateway = load_policy(ISTIO)
    policy = TrafficPolicy("ossa-orchestrator", gateway.rules, gateway.subsets)
    config = apply_canary(read_config(rendered), policy, TARGETS)
    write_config(rendered, config)
    validate_envoy_config(rendered)
    names = set(clusters(config))
    assert {f"{c}-{s}" for c in ("orchestrator", "orchestrator_streams") for s in TARGETS} <= names
    by_path = [r for r in routes(config) if r["match"].get("path") == "/ossa.orchestrator.v1.OrchestratorService/Work"]
    by_prefix = [r for r in routes(config) if r["match"].get("prefix") == "/ossa.orchestrator.v1."]
    for split, cluster in ((by_path, "orchestrator_streams"), (by_prefix, "orchestrator")):
        assert len(split) == 2
        targets = {r["route"].get("cluster") for r in split} | {
            c["name"] for r in split for c in r["route"].get("weighted_clusters", {}).get("clusters", [])
        }
        assert targets - {None} <= {f"{cluster}-{s}" for s in TARGETS} and len(targets - {None}) >= 1


def test_a_process_per_subset_is_required(rendered: Path) -> None:
    with pytest.raises(CanaryError, match="no process for subset"):
        apply_canary(read_config(rendered), load_policy(ISTIO), {"v1": TARGETS["v1"]})


def test_upstreams_follow_the_per_service_hosts(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"OSSA_REGISTRY_HOST": "ossa-registry", "OSSA_SEARCH_HOST": "10.0.0.7", "OSSA_HOST": "0.0.0.0"},
        data_dir=tmp_path,
    )
    path = render_envoy_config(settings, tmp_path / "envoy")
    config = retarget_upstreams(read_config(path), settings)
    write_config(path, config)
    validate_envoy_config(path)
    by_name = clusters(config)
    assert endpoint(by_name["registry"]) == ("ossa-registry", settings.registry_port)
    assert endpoint(by_name["registry_streams"]) == ("ossa-registry", settings.registry_port)  # streams.py
    assert by_name["registry"]["type"] == "STRICT_DNS"
    assert endpoint(by_name["search"]) == ("10.0.0.7", settings.search_port)
    assert endpoint(by_name["orchestrator"]) == ("127.0.0.1", settings.orchestrator_port)  # not set: unchanged


def test_clients_dial_the_per_service_hosts() -> None:
    settings = Settings.from_env({"OSSA_REGISTRY_HOST": "ossa-registry", "OSSA_SEARCH_HOST": "ossa-search"})
    assert settings.registry_target == "ossa-registry:3011" and settings.search_target == "ossa-search:3014"
    assert REGISTRY.target(settings) == "ossa-registry:3011"
    assert ORCHESTRATOR.target(settings) == "127.0.0.1:3012"
    assert Settings().gateway_grpc_target == "127.0.0.1:3010"


def test_up_canary_with_a_bad_istio_dir_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in os.environ.copy():
        if name.startswith("OSSA_"):
            monkeypatch.delenv(name)
    from ossa_cli.up import port_fields

    for name in port_fields():
        monkeypatch.setenv(f"OSSA_{name.upper()}", "0")
    code = main(["up", "--canary", "--istio-dir", str(tmp_path / "missing"), "--data-dir", str(tmp_path / "data")])
    assert code == 2
    assert "--canary:" in capsys.readouterr().err


def test_healthcheck_cli_fails_cleanly() -> None:
    usage = subprocess.run([sys.executable, "-m", "ossa_cli.healthcheck"], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage" in usage.stderr
    down = subprocess.run([sys.executable, "-m", "ossa_cli.healthcheck", "127.0.0.1:1"], capture_output=True, text=True)
    assert down.returncode == 1 and "127.0.0.1:1" in down.stderr


def test_gateway_container_renders_envoy_for_its_upstreams(tmp_path: Path) -> None:
    from ossa_cli.gateway_container import envoy_argv

    settings = Settings.from_env(
        {"OSSA_HOST": "0.0.0.0", "OSSA_ORCHESTRATOR_HOST": "ossa-orchestrator"}, data_dir=tmp_path
    )
    argv = envoy_argv(settings)
    config = Path(argv[argv.index("-c") + 1])
    assert config.parent == tmp_path / "envoy"
    assert endpoint(clusters(read_config(config))["orchestrator"]) == ("ossa-orchestrator", 3012)
    validate_envoy_config(config)
