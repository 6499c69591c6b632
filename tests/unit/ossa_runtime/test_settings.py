"""ossa_runtime.settings: OSSA_* variables read once, typed, validated with clear messages."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from ossa_runtime.settings import SECRET_FIELDS, Settings, SettingsError


def test_defaults_match_the_spec_topology() -> None:
    s = Settings.from_env({})
    assert (s.gateway_port, s.registry_port, s.orchestrator_port, s.monitoring_port) == (3100, 3011, 3012, 3013)
    assert (s.postgres_port, s.redis_port, s.envoy_admin_port) == (5433, 6382, 9901)
    assert s.heartbeat_ttl_seconds == 60


@pytest.mark.parametrize(("cores", "workers"), [(None, 1), (1, 1), (2, 1), (3, 1), (4, 2), (16, 8)])
def test_one_orchestrator_per_two_cores_by_default(
    monkeypatch: pytest.MonkeyPatch, cores: int | None, workers: int
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    assert Settings.from_env({}).orchestrator_workers == workers
    assert Settings.from_env({"OSSA_ORCHESTRATOR_WORKERS": "3"}).orchestrator_workers == 3


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
        ({"OSSA_BATCH_LINGER_MS": "-1"}, "OSSA_BATCH_LINGER_MS"),
        ({"OSSA_BATCH_LINGER_MS": "500"}, "OSSA_BATCH_LINGER_MS"),
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


# Secrets from OSSA_<FIELD>_FILE (as Kubernetes mounts them) -------------------------------------


@pytest.mark.parametrize("name", sorted(SECRET_FIELDS))
def test_secret_from_a_file(tmp_path: Path, name: str) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret-value-1\n")  # the trailing newline of `echo ... >` is dropped
    s = Settings.from_env({f"OSSA_{name.upper()}_FILE": str(secret)})
    assert getattr(s, name) == "s3cret-value-1"


def test_secret_fields_are_kept_out_of_repr() -> None:
    by_name = {f.name: f for f in fields(Settings)}
    assert all(not by_name[name].repr for name in SECRET_FIELDS)
    s = Settings.from_env({"OSSA_JWT_SECRET": "hunter2-jwt", "OSSA_DATABASE_URL": "postgresql://u:pw-db-9@h/d"})
    assert "hunter2-jwt" not in repr(s) and "pw-db-9" not in repr(s)


def test_secret_env_and_file_together_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("x")
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"OSSA_JWT_SECRET": "inline-value", "OSSA_JWT_SECRET_FILE": str(tmp_path / "k")})
    assert "OSSA_JWT_SECRET and OSSA_JWT_SECRET_FILE" in str(caught.value)
    assert "inline-value" not in str(caught.value)


def test_unreadable_secret_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"OSSA_API_KEY_FILE=.*missing.*cannot read the file"):
        Settings.from_env({"OSSA_API_KEY_FILE": str(tmp_path / "missing")})
    (tmp_path / "dir").mkdir()
    with pytest.raises(SettingsError, match="OSSA_REDIS_URL_FILE"):
        Settings.from_env({"OSSA_REDIS_URL_FILE": str(tmp_path / "dir")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SettingsError, match=r"OSSA_DATABASE_URL_FILE=.*empty"):
        Settings.from_env({"OSSA_DATABASE_URL_FILE": str(tmp_path / "empty")})


def test_empty_file_variable_means_unset(tmp_path: Path) -> None:
    s = Settings.from_env({"OSSA_JWT_SECRET": "from-env", "OSSA_JWT_SECRET_FILE": ""})
    assert s.jwt_secret == "from-env"


def test_overrides_win_over_secret_files(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("redis://file:6379/0")
    s = Settings.from_env({"OSSA_REDIS_URL_FILE": str(tmp_path / "url")}, redis_url="redis://override:6379/0")
    assert s.redis_url == "redis://override:6379/0"
