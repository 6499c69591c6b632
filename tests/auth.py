"""Tokens for tests: the test sessions' JWT secret, role tokens and channels that send them.

settings = Settings.from_env({}, jwt_secret=TEST_JWT_SECRET, ...)
async with channel(target) as ch: ...              # admin token on every call
async with channel(target, token("viewer")) as ch: ...
"""

from __future__ import annotations

from typing import Any

import grpc

from ossa_runtime.auth.client import bearer_interceptors
from ossa_runtime.auth.tokens import mint_token
from ossa_runtime.settings import Settings

TEST_JWT_SECRET = "test-only-secret-0123456789abcdef0123456789abcdef"
_SETTINGS = Settings.from_env({}, jwt_secret=TEST_JWT_SECRET)


def token(
    role: str | None = "admin",
    *,
    sub: str = "test-user",
    type: str = "user",
    scopes: tuple[str, ...] = (),
    ttl_seconds: int = 3600,
    settings: Settings | None = None,
) -> str:
    """A valid token signed with the test secret (or `settings`' keys)."""
    minted, _ = mint_token(settings or _SETTINGS, sub=sub, role=role, scopes=scopes, type=type, ttl_seconds=ttl_seconds)
    return minted


ADMIN_TOKEN = token("admin", sub="test-admin")


def channel(target: str, bearer: str | None = None, **kwargs: Any) -> grpc.aio.Channel:
    """An insecure grpc.aio channel that sends `bearer` (default: an admin token) on every call."""
    interceptors = [*kwargs.pop("interceptors", []), *bearer_interceptors(ADMIN_TOKEN if bearer is None else bearer)]
    return grpc.aio.insecure_channel(target, interceptors=interceptors, **kwargs)


def metadata(bearer: str | None = None) -> tuple[tuple[str, str], ...]:
    """Per-call metadata carrying `bearer` (default: an admin token)."""
    return (("authorization", f"Bearer {ADMIN_TOKEN if bearer is None else bearer}"),)
