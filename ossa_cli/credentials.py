"""`ossa up`'s credentials: the JWT secret (generated on first run) and an admin token.

Secure by default and still easy: the first `ossa up` writes a random secret to
`<data-dir>/jwt.secret` (0600) unless OSSA_JWT_SECRET / OSSA_JWT_SECRET_FILE gives one, and every
start writes a fresh admin token (type user, role admin) to `<data-dir>/admin.token` (0600).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ossa_runtime.auth.signing import ASYMMETRIC, algorithms
from ossa_runtime.auth.tokens import mint_token
from ossa_runtime.settings import Settings, SettingsError

SECRET_FILE = "jwt.secret"
ADMIN_TOKEN_FILE = "admin.token"
ADMIN_SUB = "admin"
ADMIN_TOKEN_TTL_SECONDS = 30 * 24 * 3600


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner only (created 0600, never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def jwt_secret(settings: Settings) -> Settings:
    """`settings` with a JWT secret: the configured one, else `<data-dir>/jwt.secret` (made once)."""
    if not settings.auth_enabled or settings.jwt_secret:
        return settings
    if all(a in ASYMMETRIC for a in algorithms(settings)):
        return settings  # RS256/ES256 only: keys come from OSSA_JWT_JWKS / OSSA_JWT_PRIVATE_KEY
    path = settings.data_dir / SECRET_FILE
    try:
        secret = path.read_text().strip() if path.exists() else ""
        if not secret:
            secret = secrets.token_urlsafe(48)
            _write_private(path, secret + "\n")
        elif path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    except OSError as err:
        raise SettingsError(f"cannot keep the JWT secret in {path}: {err.strerror or err}") from None
    return settings.replace(jwt_secret=secret)


def write_admin_token(settings: Settings) -> Path | None:
    """Mint an admin token and write it to `<data-dir>/admin.token`; None when auth is off or
    this platform cannot mint (RS256/ES256 without OSSA_JWT_PRIVATE_KEY)."""
    if not settings.auth_enabled:
        return None
    try:
        token, _ = mint_token(settings, sub=ADMIN_SUB, role="admin", ttl_seconds=ADMIN_TOKEN_TTL_SECONDS)
    except SettingsError:
        return None
    path = settings.data_dir / ADMIN_TOKEN_FILE
    try:
        _write_private(path, token + "\n")
    except OSError as err:
        raise SettingsError(f"cannot write the admin token to {path}: {err.strerror or err}") from None
    return path


def read_admin_token(data_dir: Path) -> str:
    """The admin token `ossa up` wrote to `data_dir` ("" if there is none)."""
    try:
        return (data_dir / ADMIN_TOKEN_FILE).read_text().strip()
    except OSError:
        return ""


def admin_token_path(settings: Settings) -> Path | None:
    """Where `ossa up` wrote the admin token, if it did."""
    path = settings.data_dir / ADMIN_TOKEN_FILE
    return path if settings.auth_enabled and path.exists() else None
