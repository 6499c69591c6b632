"""Sessions, API keys and rate limits over REST through the real Envoy (`ossa up`): login with
OSSA_API_KEY and with an admin-created key, logout, revocation, and 429 with Retry-After."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from tests.e2e.platform import Platform, make_platform, request

pytestmark = pytest.mark.e2e

API_KEY = "e2e-env-api-key-0123456789abcdef0123456789"
VIEWER_LIMIT = 3
LIST_AGENTS = "ossa.registry.v1.AgentRegistryService/ListAgents"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A platform of its own: OSSA_API_KEY set and a tiny viewer rate limit."""
    p = make_platform(
        tmp_path_factory.mktemp("sessions") / "data",
        {"OSSA_API_KEY": API_KEY, "OSSA_RATELIMIT_VIEWER": str(VIEWER_LIMIT), "OSSA_RATELIMIT_WINDOW_SECONDS": "60"},
    )
    p.start()
    yield p
    code = p.stop()
    assert code == 0, f"ossa up exited with {code} on SIGTERM:\n{p.log_tail()}"


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def login(platform: Platform, key: str) -> tuple[int, dict[str, str], Any]:
    return request(platform.gateway, "POST", "/api/v1/auth/login", {"api_key": key})


def admin_token(platform: Platform) -> str:
    status, _, body = login(platform, API_KEY)
    assert status == 200, body
    return str(body["access_token"])


def create_key(platform: Platform, admin: str, name: str, role: str) -> dict[str, Any]:
    status, _, body = request(
        platform.gateway, "POST", "/api/v1/auth/api-keys", {"name": name, "role": role}, headers=auth(admin)
    )
    assert status == 201, body
    return dict(body)


def test_login_with_the_env_key_and_use_the_token(platform: Platform) -> None:
    status, _, body = login(platform, API_KEY)
    assert status == 200, body
    assert body["token_type"] == "Bearer" and body["user_id"] == "admin" and body["role"] == "admin"
    assert body["expires_in"] == 900 and body["session_id"]
    status, _, agents = request(platform.gateway, "GET", "/api/v1/agents", headers=auth(body["access_token"]))
    assert status == 200 and isinstance(agents, list)


def test_wrong_key_is_401_in_the_error_shape(platform: Platform) -> None:
    status, headers, body = login(platform, "not-a-key")
    assert status == 401
    assert headers["content-type"].startswith("application/json")
    assert body == {"code": 16, "message": "invalid or revoked API key", "details": []}
    status, _, body = login(platform, "")
    assert status == 400 and body["code"] == 3 and "api_key" in body["message"]


def test_api_keys_login_logout(platform: Platform) -> None:
    admin = admin_token(platform)
    created = create_key(platform, admin, "e2e-operator", "operator")
    assert created["key"].startswith("ossa_") and created["api_key"]["role"] == "operator"
    status, _, listed = request(platform.gateway, "GET", "/api/v1/auth/api-keys", headers=auth(admin))
    assert status == 200 and isinstance(listed, list)
    mine = [k for k in listed if k["id"] == created["api_key"]["id"]]
    assert len(mine) == 1 and "key" not in mine[0] and mine[0]["name"] == "e2e-operator"

    status, _, session = login(platform, created["key"])
    assert status == 200 and session["user_id"] == "e2e-operator" and session["role"] == "operator"
    token = session["access_token"]
    status, _, _ = request(platform.gateway, "GET", "/api/v1/agents", headers=auth(token))
    assert status == 200
    status, _, body = request(platform.gateway, "GET", "/api/v1/auth/api-keys", headers=auth(token))
    assert status == 403 and "admin:all" in body["message"]

    status, _, out = request(platform.gateway, "POST", "/api/v1/auth/logout", {}, headers=auth(token))
    assert status == 200 and out["session_id"] == session["session_id"]
    assert out["revoked_jti"] == jwt.decode(token, options={"verify_signature": False})["jti"]
    status, _, body = request(platform.gateway, "POST", "/api/v1/auth/logout", {}, headers=auth(token))
    assert status == 401 and "revoked" in body["message"]
    # Every service refuses it (each checks revocations, trusting a fresh "not revoked" for ~1 s).
    assert eventually_status(platform, "GET", "/api/v1/agents", token) == 401

    # A revoked key cannot log in again.
    status, _, _ = request(
        platform.gateway, "DELETE", f"/api/v1/auth/api-keys/{created['api_key']['id']}", headers=auth(admin)
    )
    assert status == 204
    status, _, body = login(platform, created["key"])
    assert status == 401 and body["message"] == "invalid or revoked API key"


def test_revoke_a_token_by_jti(platform: Platform) -> None:
    admin = admin_token(platform)
    victim = admin_token(platform)
    jti = jwt.decode(victim, options={"verify_signature": False})["jti"]
    status, _, _ = request(platform.gateway, "POST", f"/api/v1/auth/tokens/{jti}/revoke", {}, headers=auth(admin))
    assert status == 204
    assert eventually_status(platform, "GET", "/api/v1/auth/api-keys", victim) == 401


def test_rate_limit_is_429_with_retry_after(platform: Platform) -> None:
    admin = admin_token(platform)
    viewer_key = create_key(platform, admin, "e2e-viewer", "viewer")["key"]
    status, _, session = login(platform, viewer_key)
    assert status == 200
    # no-cache: reads Envoy answers from its cache never reach the limiter (docs/api.md, caching).
    viewer = {**auth(session["access_token"]), "cache-control": "no-cache"}
    for _ in range(VIEWER_LIMIT):
        status, _, body = request(platform.gateway, "GET", "/api/v1/agents", headers=viewer)
        assert status == 200, body
    status, headers, body = request(platform.gateway, "GET", "/api/v1/agents", headers=viewer)
    assert status == 429, body
    retry_after = int(headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert body["code"] == 8
    assert body["message"] == (
        f"rate limit of {VIEWER_LIMIT} per 60s exceeded for {LIST_AGENTS}; retry in {retry_after} s"
    )
    [detail] = body["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.RetryInfo"
    assert detail["retry_delay"] == f"{retry_after}s"
    # Another endpoint has its own count; admins are not limited by default.
    status, _, _ = request(
        platform.gateway, "GET", "/api/v1/agents/00000000-0000-0000-0000-000000000000", headers=viewer
    )
    assert status == 404
    for _ in range(VIEWER_LIMIT + 2):
        status, _, _ = request(platform.gateway, "GET", "/api/v1/agents", headers=auth(admin))
        assert status == 200


def test_openapi_documents_the_auth_routes(platform: Platform) -> None:
    status, _, doc = request(platform.gateway, "GET", "/api/v1/openapi.json")
    assert status == 200
    paths = doc["paths"]
    assert {"/api/v1/auth/login", "/api/v1/auth/logout", "/api/v1/auth/api-keys"} <= set(paths)
    assert "201" in paths["/api/v1/auth/api-keys"]["post"]["responses"]
    assert "204" in paths["/api/v1/auth/api-keys/{api_key_id}"]["delete"]["responses"]


def eventually_status(platform: Platform, method: str, path: str, token: str, want: int = 401) -> int:
    """The status of `method path` once it is `want` (or the last one after 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        status, _, _ = request(platform.gateway, method, path, headers=auth(token))
        if status == want or time.monotonic() > deadline:
            return status
        time.sleep(0.2)
