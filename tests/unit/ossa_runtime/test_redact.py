"""ossa_runtime.redact: secrets never reach printed settings or log lines."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from ossa_cli.plan import build_plan
from ossa_runtime.logging import JsonFormatter
from ossa_runtime.redact import (
    REDACTED,
    install_log_redaction,
    redact_env,
    redact_text,
    redact_url,
    secret_names,
    secret_values,
)
from ossa_runtime.settings import SECRET_FIELDS, Settings

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlLWhlcmU"


def test_redact_url() -> None:
    assert redact_url("postgresql://ossa:pa55word@127.0.0.1:5433/db") == "postgresql://ossa:***@127.0.0.1:5433/db"
    assert redact_url("redis://:topsecret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redact_url("redis://127.0.0.1:6382/0") == "redis://127.0.0.1:6382/0"
    assert redact_url("postgresql://h/db?user=u&password=pw1234") == "postgresql://h/db?user=u&password=***"
    assert redact_url("http://[::1/") == REDACTED  # unparseable: nothing of it is shown


def test_redact_env_hides_every_secret_variable() -> None:
    s = Settings.from_env(
        {
            "OSSA_DATABASE_URL": "postgresql://u:dbpass99@h/d",
            "OSSA_REDIS_URL": "redis://:redispass9@h:1/0",
            "OSSA_JWT_SECRET": "jwt-secret-value",
            "OSSA_API_KEY": "api-key-value",
        }
    )
    env = s.to_env()
    assert env["OSSA_JWT_SECRET"] == "jwt-secret-value"  # children still get them
    printable = redact_env(env)
    text = json.dumps(printable)
    for secret in ("dbpass99", "redispass9", "jwt-secret-value", "api-key-value"):
        assert secret not in text
    assert printable["OSSA_REGISTRY_PORT"] == env["OSSA_REGISTRY_PORT"]
    assert secret_names() >= SECRET_FIELDS


def test_secret_values_include_url_passwords() -> None:
    s = Settings.from_env({"OSSA_DATABASE_URL": "postgresql://u:dbpass99@h/d", "OSSA_JWT_SECRET": "abc"})
    values = secret_values(s)
    assert "dbpass99" in values and "postgresql://u:dbpass99@h/d" in values
    assert "abc" not in values  # too short to scrub from text safely


def test_redact_text_removes_secrets_and_jwts() -> None:
    text = f"token {JWT} and key 0123456789 in one line"
    assert redact_text(text, ["0123456789"]) == "token *** and key *** in one line"


def test_log_lines_never_carry_a_secret_or_a_token() -> None:
    s = Settings.from_env({"OSSA_JWT_SECRET": "super-secret-jwt-key", "OSSA_DATABASE_URL": "postgresql://u:dbpw77@h/d"})
    logger = logging.getLogger("ossa.test.redact")
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("ossa-test"))
    logger.addHandler(handler)
    try:
        install_log_redaction(s, logger)
        install_log_redaction(s, logger)  # idempotent: wraps once
        logger.warning(
            "connecting to %s with %s",
            s.database_url,
            s.jwt_secret,
            extra={"metadata": {"authorization": f"Bearer {JWT}"}},
        )
        try:
            raise RuntimeError(f"bad key super-secret-jwt-key for {JWT}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "super-secret-jwt-key" not in out and "dbpw77" not in out and JWT not in out
    first = json.loads(out.splitlines()[0])
    assert first["message"] == "connecting to *** with ***"
    assert first["metadata"]["authorization"] == "Bearer ***"


def test_services_get_the_secret_not_its_file_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ossa up` reads OSSA_JWT_SECRET_FILE once; its children get the value (both would clash)."""
    (tmp_path / "jwt").write_text("file-jwt-secret\n")
    monkeypatch.setenv("OSSA_JWT_SECRET_FILE", str(tmp_path / "jwt"))
    plan = build_plan(
        Settings.from_env(data_dir=tmp_path, database_url="postgresql://u:p@db/x", redis_url="redis://r/0")
    )
    env = plan.service_env("registry")
    assert env["OSSA_JWT_SECRET"] == "file-jwt-secret" and "OSSA_JWT_SECRET_FILE" not in env
    assert env["OSSA_SERVICE_NAME"] == "ossa-registry"
    assert Settings.from_env(env).jwt_secret == "file-jwt-secret"


def test_db_password_goes_to_a_real_database_only(tmp_path: Path) -> None:
    real = build_plan(Settings.from_env(data_dir=tmp_path, database_url="postgresql://u@db/x", db_password="pw-real"))
    assert real.service_env("registry")["OSSA_DB_PASSWORD"] == "pw-real"
    embedded = build_plan(Settings.from_env(data_dir=tmp_path, redis_url="redis://r/0", db_password="pw-real"))
    assert embedded.postgres is not None
    embedded.postgres.password_path.parent.mkdir(parents=True)
    embedded.postgres.password_path.write_text("generated\n")
    assert embedded.child_settings().db_password == ""  # the embedded server's URL has its own password
