"""gateway_http.envoy_config.tracing: Envoy traces (and exports to the OTLP collector) only when one is configured."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway_http.envoy_config.binary import validate_envoy_config
from gateway_http.envoy_config.render import render_envoy_config
from gateway_http.envoy_config.tracing import CLUSTER, collector
from ossa_runtime.settings import Settings, SettingsError


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"OSSA_DATA_DIR": str(tmp_path), **env})


def hcm(config: dict) -> dict:  # type: ignore[type-arg]
    listener = config["static_resources"]["listeners"][0]
    manager: dict = listener["filter_chains"][0]["filters"][0]["typed_config"]  # type: ignore[type-arg]
    return manager


def test_no_collector_no_tracer_and_the_client_trace_is_logged(tmp_path: Path) -> None:
    path = render_envoy_config(settings(tmp_path), tmp_path / "envoy")
    config = yaml.safe_load(path.read_text())
    manager = hcm(config)
    assert "tracing" not in manager
    assert CLUSTER not in {c["name"] for c in config["static_resources"]["clusters"]}
    log = manager["access_log"][0]["typed_config"]["log_format"]["json_format"]
    assert list(log) == ["timestamp", "level", "service", "trace_id", "span_id", "message", "metadata"]
    assert log["trace_id"] == "%DYNAMIC_METADATA(ossa:trace_id)%"
    assert {"method", "path", "status", "duration_ms"} <= set(log["metadata"])


def test_otlp_collector_adds_a_tracer_that_envoy_accepts(tmp_path: Path) -> None:
    path = render_envoy_config(settings(tmp_path, OSSA_OTLP_ENDPOINT="http://127.0.0.1:4317"), tmp_path / "envoy")
    config = yaml.safe_load(path.read_text())
    manager = hcm(config)
    provider = manager["tracing"]["provider"]
    assert provider["name"] == "envoy.tracers.opentelemetry"
    assert provider["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"] == CLUSTER
    (cluster,) = [c for c in config["static_resources"]["clusters"] if c["name"] == CLUSTER]
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 4317}
    assert manager["access_log"][0]["typed_config"]["log_format"]["json_format"]["trace_id"] == "%TRACE_ID%"
    validate_envoy_config(path)


def test_collector_endpoint_forms(tmp_path: Path) -> None:
    assert collector(settings(tmp_path)) is None
    assert collector(settings(tmp_path, OSSA_OTLP_ENDPOINT="collector:4317")) == ("collector", 4317, False)
    assert collector(settings(tmp_path, OSSA_OTLP_ENDPOINT="https://otel.example")) == ("otel.example", 4317, True)
    console = settings(tmp_path, OSSA_OTLP_ENDPOINT="http://127.0.0.1:4317", OSSA_TRACING_EXPORTER="console")
    assert collector(console) is None
    with pytest.raises(SettingsError, match="OSSA_OTLP_ENDPOINT"):
        collector(settings(tmp_path, OSSA_OTLP_ENDPOINT="ftp://x:1"))


def test_exporter_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="OSSA_TRACING_EXPORTER"):
        settings(tmp_path, OSSA_TRACING_EXPORTER="jaeger")
    with pytest.raises(SettingsError, match="OSSA_OTLP_ENDPOINT"):
        settings(tmp_path, OSSA_TRACING_EXPORTER="otlp")
