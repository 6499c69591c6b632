"""`ossa up`'s credentials: a JWT secret made once (0600), an admin token written at every start."""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

import pytest

from ossa_cli import credentials
from ossa_cli.up import port_fields, prepare_up
from ossa_runtime.auth.tokens import TokenVerifier
from ossa_runtime.settings import Settings, SettingsError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_run_generates_a_private_secret_and_later_runs_reuse_it(tmp_path: Path) -> None:
    settings = credentials.jwt_secret(Settings.from_env({}, data_dir=tmp_path))
    secret_file = tmp_path / "jwt.secret"
    assert mode(secret_file) == 0o600
    assert secret_file.read_text().strip() == settings.jwt_secret and len(settings.jwt_secret) >= 64
    again = credentials.jwt_secret(Settings.from_env({}, data_dir=tmp_path))
    assert again.jwt_secret == settings.jwt_secret
    assert settings.jwt_secret not in repr(again)  # repr=False


def test_a_configured_secret_wins_and_nothing_is_written(tmp_path: Path) -> None:
    given = Settings.from_env({"OSSA_JWT_SECRET": "s" * 40}, data_dir=tmp_path)
    assert credentials.jwt_secret(given).jwt_secret == "s" * 40
    assert not (tmp_path / "jwt.secret").exists()


def test_a_too_open_secret_file_is_tightened(tmp_path: Path) -> None:
    (tmp_path / "jwt.secret").write_text("k" * 64 + "\n")
    (tmp_path / "jwt.secret").chmod(0o644)
    assert credentials.jwt_secret(Settings.from_env({}, data_dir=tmp_path)).jwt_secret == "k" * 64
    assert mode(tmp_path / "jwt.secret") == 0o600


def test_admin_token_is_valid_admin_and_private(tmp_path: Path) -> None:
    settings = credentials.jwt_secret(Settings.from_env({}, data_dir=tmp_path))
    path = credentials.write_admin_token(settings)
    assert path == tmp_path / "admin.token" and mode(path) == 0o600
    claims = TokenVerifier(settings).verify(credentials.read_admin_token(tmp_path))
    assert claims.scope == ("admin:all",) and claims.type == "user" and claims.sub == "admin"
    assert claims.exp - claims.iat == credentials.ADMIN_TOKEN_TTL_SECONDS
    first = path.read_text()
    credentials.write_admin_token(settings)
    assert path.read_text() != first  # re-minted at every start
    assert credentials.admin_token_path(settings) == path


def test_auth_off_writes_nothing(tmp_path: Path) -> None:
    off = Settings.from_env({"OSSA_AUTH_ENABLED": "false"}, data_dir=tmp_path)
    assert credentials.jwt_secret(off).jwt_secret == ""
    assert credentials.write_admin_token(off) is None and credentials.admin_token_path(off) is None


def test_unwritable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SettingsError, match="cannot keep the JWT secret"):
        credentials.jwt_secret(Settings.from_env({}, data_dir=blocker / "data"))


def test_prepare_up_passes_the_secret_to_the_services(tmp_path: Path) -> None:
    args = argparse.Namespace(data_dir=tmp_path / "data")
    env = {f"OSSA_{name.upper()}": "0" for name in port_fields()}  # free ports: nothing is started
    env |= {"OSSA_DATABASE_URL": "postgresql://u@127.0.0.1:1/db", "OSSA_REDIS_URL": "redis://127.0.0.1:1/0"}
    plan, lock = prepare_up(args, env)
    try:
        secret = (tmp_path / "data" / "jwt.secret").read_text().strip()
        assert plan.service_env("registry")["OSSA_JWT_SECRET"] == secret
        assert (tmp_path / "data" / "admin.token").exists()
    finally:
        lock.release()
