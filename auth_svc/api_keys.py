"""API keys: generated here, shown once, stored as their SHA-256 in PostgreSQL (table api_keys).

A key is `ossa_` + 43 URL-safe characters (256 random bits), so an unsalted hash is as good as a
slow one: nobody can guess their way back. `OSSA_API_KEY` is the one key that is not in the
table: it logs in as the user `admin` with the admin role (compared in constant time).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ossa_runtime.errors import AlreadyExists, InvalidArgument, NotFound

KEY_PREFIX = "ossa_"
SHOWN_PREFIX_CHARS = 12  # `ossa_` and 7 more: enough to tell keys apart, useless to guess them
ENV_KEY_USER = "admin"  # who OSSA_API_KEY logs in as
ENV_KEY_ID = "env"  # the `api_key_id` recorded in its sessions
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
ROLES = ("viewer", "operator", "admin")
_COLUMNS = "id, name, role, prefix, created_by, created_at, revoked_at, last_used_at"


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    name: str
    role: str
    prefix: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class LoginIdentity:
    """Who an API key logs in as."""

    user_id: str
    role: str
    api_key_id: str


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def validate_name(name: str) -> str:
    if not name:
        raise InvalidArgument("name", "is required")
    if not NAME.fullmatch(name):
        raise InvalidArgument("name", "must be 1-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
    if name == ENV_KEY_USER:
        raise InvalidArgument("name", f"{ENV_KEY_USER!r} is reserved for OSSA_API_KEY")
    return name


def _record(row: asyncpg.Record) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=str(row["id"]),
        name=row["name"],
        role=row["role"],
        prefix=row["prefix"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


def _uuid(raw: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InvalidArgument(field, f"{raw!r} is not a UUID") from None


class ApiKeyStore:
    def __init__(self, pool: Any, env_key: str = "") -> None:
        self.pool = pool
        self.env_key = env_key

    async def create(self, name: str, role: str, created_by: str) -> tuple[ApiKeyRecord, str]:
        """A new key for `name`; returns its record and the key (the only time it is seen)."""
        validate_name(name)
        if role not in ROLES:
            raise InvalidArgument("role", f"must be one of {', '.join(ROLES)}")
        key = new_key()
        try:
            row = await self.pool.fetchrow(
                f"INSERT INTO api_keys (name, role, key_hash, prefix, created_by) VALUES ($1, $2, $3, $4, $5) "
                f"RETURNING {_COLUMNS}",
                name,
                role,
                key_hash(key),
                key[:SHOWN_PREFIX_CHARS],
                created_by,
            )
        except asyncpg.UniqueViolationError:
            raise AlreadyExists(f"an API key named {name!r} exists; revoke it first or pick another name") from None
        return _record(row), key

    async def list(self, include_revoked: bool = False) -> list[ApiKeyRecord]:
        where = "" if include_revoked else "WHERE revoked_at IS NULL"
        rows = await self.pool.fetch(f"SELECT {_COLUMNS} FROM api_keys {where} ORDER BY created_at DESC, id")
        return [_record(r) for r in rows]

    async def get(self, key_id: str) -> ApiKeyRecord:
        row = await self.pool.fetchrow(f"SELECT {_COLUMNS} FROM api_keys WHERE id = $1", _uuid(key_id, "api_key_id"))
        if row is None:
            raise NotFound(f"API key {key_id} not found")
        return _record(row)

    async def revoke(self, key_id: str) -> ApiKeyRecord:
        """Mark the key revoked (idempotent); NotFound when there is no such key."""
        row = await self.pool.fetchrow(
            f"UPDATE api_keys SET revoked_at = COALESCE(revoked_at, CURRENT_TIMESTAMP) WHERE id = $1 "
            f"RETURNING {_COLUMNS}",
            _uuid(key_id, "api_key_id"),
        )
        if row is None:
            raise NotFound(f"API key {key_id} not found")
        return _record(row)

    async def identify(self, key: str) -> LoginIdentity | None:
        """Who `key` logs in as; None for an unknown or revoked key."""
        if self.env_key and hmac.compare_digest(key.encode("utf-8"), self.env_key.encode("utf-8")):
            return LoginIdentity(ENV_KEY_USER, "admin", ENV_KEY_ID)
        if not key.startswith(KEY_PREFIX):
            return None
        row = await self.pool.fetchrow(
            "UPDATE api_keys SET last_used_at = CURRENT_TIMESTAMP WHERE key_hash = $1 AND revoked_at IS NULL "
            "RETURNING id, name, role",
            key_hash(key),
        )
        if row is None:
            return None
        return LoginIdentity(row["name"], row["role"], str(row["id"]))
