"""ossa_runtime.settings: OSSA_* variables read once, typed, validated with clear messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from ossa_runtime.settings import Settings, SettingsError


def test_defaults_match_the_spec_topology() -> None:
    s = Settings.from_env({})
    assert (s.gateway_port, s.registry_port, s.orchestrator_port, s.monitoring_port) == (3100, 3011, 3012, 3013)
    assert (s.postgres_port, s.redis_port, s.envoy_admin_port) == (5433, 6382, 9901)
    assert s.heartbeat_ttl_seconds == 60


def test_env_is_parsed_by_type() -> None:
    s = Settings.from_env(
        {"OSSA_REGISTRY_PORT": "4011", "OSSA_DATA_DIR": "/tmp/x", "OSSA_HEARTBEAT_FLUSH_SECONDS": "0.5"}
    )
    assert s.registry_port == 4011
    assert s.data_dir == Path("/tmp/x")
    assert s.heartbeat_flush_seconds == 0.5


def test_overrides_win_over_env() -> None:
    assert Settings.from_env({"OSSA_REGISTRY_PORT": "4011"}, registry_port=5011).registry_port == 5011


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"OSSA_REGISTRY_PORT": "abc"}, "OSSA_REGISTRY_PORT"),
        ({"OSSA_GATEWAY_PORT": "70000"}, "OSSA_GATEWAY_PORT"),
        ({"OSSA_HEARTBEAT_TTL_SECONDS": "0"}, "OSSA_HEARTBEAT_TTL_SECONDS"),
        ({"OSSA_LOG_LEVEL": "loud"}, "OSSA_LOG_LEVEL"),
        ({"OSSA_DB_POOL_MIN": "5", "OSSA_DB_POOL_MAX": "2"}, "OSSA_DB_POOL_MIN"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        Settings.from_env(env)


def test_to_env_round_trips() -> None:
    s = Settings.from_env({"OSSA_REGISTRY_PORT": "4011", "OSSA_DATABASE_URL": "postgresql://x/y"})
    assert Settings.from_env(s.to_env()) == s


def test_settings_are_frozen() -> None:
    s = Settings.from_env({})
    with pytest.raises(AttributeError):
        s.registry_port = 1  # type: ignore[misc]
