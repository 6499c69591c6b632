"""`ossa token create` / `ossa token revoke`: output for scripts, keys from the data directory, clear
errors (exit 2) for bad arguments. Revoking against a real gateway is in
tests/integration/auth_svc/test_sessions.py."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from ossa_cli import argtypes
from ossa_cli.main import main
from ossa_cli.token import revoke_target
from ossa_runtime.auth.tokens import TokenVerifier, mint_token
from ossa_runtime.errors import Unauthenticated
from ossa_runtime.settings import Settings

SECRET = "cli-token-test-secret-" + "z" * 26


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No OSSA_* from the caller's shell; OSSA_DATA_DIR is an empty temp dir."""
    for name in list(os.environ):
        if name.startswith("OSSA_"):
            monkeypatch.delenv(name)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv("OSSA_DATA_DIR", str(data_dir))
    return data_dir


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(["token", *argv])
    except SystemExit as exit_:  # argparse errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def verifier(secret: str = SECRET) -> TokenVerifier:
    return TokenVerifier(Settings.from_env({}, jwt_secret=secret))


def test_create_prints_the_token_alone_on_the_last_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OSSA_JWT_SECRET", SECRET)
    code, out, err = run(capsys, "create", "--sub", "summarizer-1", "--role", "operator", "--type", "agent")
    assert code == 0, err
    lines = out.splitlines()
    assert lines and lines[-1] == out.strip()  # nothing else on stdout
    claims = verifier().verify(lines[-1])
    assert (claims.sub, claims.type) == ("summarizer-1", "agent")
    assert set(claims.scope) == {"agent:read", "agent:write", "workflow:read", "workflow:execute"}
    assert claims.exp - claims.iat == 3600  # the default --ttl 1h
    assert claims.jti in err and "expires" in err


@pytest.mark.parametrize(("ttl", "seconds"), [("90s", 90), ("15m", 900), ("1h30m", 5400), ("7d", 604800), ("120", 120)])
def test_create_ttl(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, ttl: str, seconds: int
) -> None:
    monkeypatch.setenv("OSSA_JWT_SECRET", SECRET)
    code, out, err = run(capsys, "create", "--sub", "u1", "--role", "viewer", "--ttl", ttl)
    assert code == 0, err
    claims = verifier().verify(out.strip())
    assert claims.exp - claims.iat == seconds


def test_create_signs_with_the_data_dirs_secret(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    other = tmp_path / "platform"
    other.mkdir()
    (other / "jwt.secret").write_text("data-dir-secret-" + "q" * 30 + "\n")
    code, out, err = run(capsys, "create", "--sub", "ops", "--role", "admin", "--data-dir", str(other))
    assert code == 0, err
    assert verifier("data-dir-secret-" + "q" * 30).verify(out.strip()).scope == ("admin:all",)
    with pytest.raises(Unauthenticated, match="signature"):
        verifier().verify(out.strip())


def test_create_with_scopes_only(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSSA_JWT_SECRET", SECRET)
    code, out, _ = run(capsys, "create", "--sub", "m", "--scope", "metrics:read", "--scope", "agent:read")
    assert code == 0
    assert verifier().verify(out.strip()).scope == ("metrics:read", "agent:read")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sub", "x", "--role", "boss"], "argument --role: invalid choice: 'boss'"),
        (["--sub", "x", "--role", "viewer", "--ttl", "soon"], "argument --ttl: 'soon' is not a duration"),
        (["--sub", "x", "--role", "viewer", "--ttl", "0s"], "argument --ttl: '0s': a duration must be longer"),
        (["--sub", "x", "--role", "viewer", "--ttl", "-5"], "argument --ttl: '-5' is not a duration"),
        (["--sub", "x", "--role", "viewer", "--type", "robot"], "argument --type: invalid choice: 'robot'"),
        (["--sub", "x", "--scope", "agent:fly"], "argument --scope: invalid choice: 'agent:fly'"),
        (["--role", "viewer"], "the following arguments are required: --sub"),
        (["--sub", "x"], "give --role (viewer, operator or admin) or at least one --scope"),
        (["--sub", " ", "--role", "viewer"], "sub: must not be empty"),
    ],
)
def test_create_bad_arguments_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str
) -> None:
    monkeypatch.setenv("OSSA_JWT_SECRET", SECRET)
    code, out, err = run(capsys, "create", *argv)
    assert code == 2
    assert out == ""
    assert message in err


def test_create_without_any_secret_says_where_to_get_one(capsys: pytest.CaptureFixture[str], clean_env: Path) -> None:
    code, out, err = run(capsys, "create", "--sub", "x", "--role", "viewer")
    assert code == 2 and out == ""
    assert "no JWT secret: set OSSA_JWT_SECRET" in err and str(clean_env / "jwt.secret") in err
    assert not (clean_env / "jwt.secret").exists()  # never made here: it would not match the platform's


def test_revoke_without_an_admin_token_exit_2(capsys: pytest.CaptureFixture[str], clean_env: Path) -> None:
    code, _, err = run(capsys, "revoke", "abc123")
    assert code == 2
    assert "no admin token: pass --token, set OSSA_TOKEN" in err and str(clean_env / "admin.token") in err


def test_revoke_unreachable_gateway_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    from ossa_cli.ports import free_port

    target = f"127.0.0.1:{free_port()}"
    code, _, err = run(capsys, "revoke", "abc123", "--token", "t", "--gateway", target)
    assert code == 1
    assert f"{target} refused to revoke abc123: UNAVAILABLE" in err


def test_revoke_target_from_a_jti_or_a_whole_token() -> None:
    token, claims = mint_token(Settings.from_env({}, jwt_secret=SECRET), sub="s", role="viewer", ttl_seconds=60)
    assert revoke_target(token) == (claims.jti, claims.exp)
    assert revoke_target(" 1f2e3d ") == ("1f2e3d", None)


@pytest.mark.parametrize("raw", ["", "x", "1.5h", "h", "10y", "1h-5m"])
def test_duration_type_rejects(raw: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        argtypes.duration(raw)
