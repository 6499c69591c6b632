"""Authentication and authorization through the real Envoy gateway (REST, transcoded).

Every REST route of the OpenAPI document x every role: allowed calls get past the auth layer,
the others are 403 naming the permission, no token is 401; bad tokens are 401; health and the
OpenAPI document need no token; every refusal has the one error shape.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest

from ossa_runtime.auth.permissions import PUBLIC, ROLES, RPC_PERMISSIONS, grants
from ossa_runtime.topology import SERVICES
from tests.e2e.agents import platform_token
from tests.e2e.platform import Platform, request

pytestmark = pytest.mark.e2e
OPENAPI = Path(__file__).resolve().parents[2] / "gen" / "ossa" / "openapi.json"
# Services whose own answer to an empty request may be 401 (login without a key).
OWN_AUTH_ANSWERS = {"/ossa.auth.v1.AuthService/Login", "/ossa.auth.v1.AuthService/Logout"}


def routes() -> list[tuple[str, str, str]]:
    """(verb, path with placeholders filled, full gRPC method) of every REST route."""
    by_operation = {m.split("/")[1].rsplit(".", 1)[1] + "_" + m.split("/")[2]: m for m in RPC_PERMISSIONS}
    out = []
    for path, operations in json.loads(OPENAPI.read_text())["paths"].items():
        for verb, operation in operations.items():
            method = by_operation[operation["operationId"]]
            out.append((verb.upper(), re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path), method))
    return sorted(out)


ROUTES = routes()


@pytest.fixture(scope="module")
def disabled(platform: Platform) -> set[str]:
    """gRPC services this platform does not run (their packages are not installed)."""
    _, _, report = request(platform.gateway, "GET", "/api/v1/health", token="")
    off = {c["name"] for c in report["components"] if c["state"] == "disabled"}
    return {info.grpc_service for info in SERVICES if info.name in off}


def is_error_shape(body: Any) -> bool:
    return isinstance(body, dict) and set(body) == {"code", "message", "details"} and bool(body["message"])


def test_every_rest_route_is_in_the_matrix() -> None:
    assert len(ROUTES) >= 25
    assert {"/ossa.registry.v1.AgentRegistryService/CreateAgent", "/ossa.auth.v1.AuthService/Login"} <= {
        m for _, _, m in ROUTES
    }


@pytest.mark.parametrize("role", [*ROLES, None])
@pytest.mark.parametrize(("verb", "path", "method"), ROUTES, ids=[f"{v} {p}" for v, p, _ in ROUTES])
def test_rest_role_matrix(
    platform: Platform, disabled: set[str], verb: str, path: str, method: str, role: str | None
) -> None:
    if method.split("/")[1] in disabled:
        pytest.skip(f"{method.split('/')[1]} is not installed, so `ossa up` does not run it")
    permission = RPC_PERMISSIONS[method]
    token = "" if role is None else platform_token(platform, role, f"rest-{role}")  # fresh: logout may revoke it
    body = {} if verb in ("POST", "PUT", "PATCH") else None
    status, _, reply = request(platform.gateway, verb, path, body, token=token)
    allowed = permission == PUBLIC or (role is not None and grants(ROLES[role], permission))
    if allowed:
        if method in OWN_AUTH_ANSWERS:
            assert "bearer token" not in str(reply) and "requires" not in str(reply), (status, reply)
        else:
            assert status not in (401, 403), f"{role} refused {verb} {path}: {status} {reply}"
    elif role is None:
        assert status == 401, (status, reply)
        assert is_error_shape(reply) and "missing bearer token" in reply["message"], reply
        assert reply["code"] == 16  # UNAUTHENTICATED
    else:
        assert status == 403, (status, reply)
        assert is_error_shape(reply) and reply["code"] == 7, reply  # PERMISSION_DENIED
        assert reply["message"] == f"permission denied: {method} requires {permission}"


def test_no_token_is_401(platform: Platform) -> None:
    status, _, body = request(platform.gateway, "GET", "/api/v1/agents", token="")
    assert status == 401
    assert body == {
        "code": 16,
        "message": "missing bearer token: send the header 'authorization: Bearer <jwt>'",
        "details": [],
    }


def secret(platform: Platform) -> str:
    return (platform.data_dir / "jwt.secret").read_text().strip()


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    out: dict[str, Any] = {
        "sub": "mallory", "iss": "ossa", "aud": ["ossa-platform"], "exp": now + 600, "iat": now,
        "jti": uuid.uuid4().hex, "scope": ["admin:all"], "type": "user",
    }  # fmt: skip
    out.update(changes)
    return out


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("garbage", "malformed token"),
        ("alg none", "algorithm 'none'"),
        ("wrong signature", "invalid token signature"),
        ("expired", "token expired at"),
        ("not yet valid", "not valid yet"),
        ("wrong issuer", "token issuer 'evil'"),
        ("wrong audience", "does not include 'ossa-platform'"),
        ("basic scheme", "Bearer <jwt>"),
    ],
)
def test_bad_tokens_are_401(platform: Platform, case: str, needle: str) -> None:
    key = secret(platform)
    tokens = {
        "garbage": "Bearer not.a.jwt",
        "alg none": "Bearer " + jwt.encode(claims(), "", algorithm="none"),
        "wrong signature": "Bearer " + jwt.encode(claims(), "x" * 64, algorithm="HS256"),
        "expired": "Bearer " + jwt.encode(claims(exp=int(time.time()) - 60), key, algorithm="HS256"),
        "not yet valid": "Bearer " + jwt.encode(claims(nbf=int(time.time()) + 3600), key, algorithm="HS256"),
        "wrong issuer": "Bearer " + jwt.encode(claims(iss="evil"), key, algorithm="HS256"),
        "wrong audience": "Bearer " + jwt.encode(claims(aud=["x"]), key, algorithm="HS256"),
        "basic scheme": "Basic " + platform.admin_token,
    }
    status, _, body = request(
        platform.gateway, "POST", "/api/v1/agents", {"name": "x"}, headers={"Authorization": tokens[case]}
    )
    assert status == 401, (status, body)
    assert is_error_shape(body) and body["code"] == 16 and needle in body["message"], body


def test_viewer_post_is_403_naming_the_permission(platform: Platform) -> None:
    viewer = platform_token(platform, "viewer", "rest-viewer")
    agent = {"name": f"v-{uuid.uuid4().hex[:8]}", "type": "worker", "version": "1.0.0"}
    status, _, body = request(platform.gateway, "POST", "/api/v1/agents", agent, token=viewer)
    assert status == 403
    assert is_error_shape(body) and "agent:write" in body["message"], body
    status, _, listed = request(platform.gateway, "GET", "/api/v1/agents", token=viewer)
    assert status == 200 and isinstance(listed, list)


def test_admin_token_from_the_data_directory_works(platform: Platform) -> None:
    assert platform.admin_token.count(".") == 2
    mode = (platform.data_dir / "admin.token").stat().st_mode & 0o777
    assert mode == 0o600 and (platform.data_dir / "jwt.secret").stat().st_mode & 0o777 == 0o600
    agent = {"name": f"a-{uuid.uuid4().hex[:8]}", "type": "worker", "version": "1.0.0"}
    status, _, created = request(platform.gateway, "POST", "/api/v1/agents", agent, token=platform.admin_token)
    assert status == 201, created
    status, _, _ = request(platform.gateway, "DELETE", f"/api/v1/agents/{created['id']}", token=platform.admin_token)
    assert status == 204


def test_health_and_openapi_need_no_token(platform: Platform) -> None:
    status, _, report = request(platform.gateway, "GET", "/api/v1/health", token="")
    assert status == 200 and report["status"] == "healthy"
    status, _, document = request(platform.gateway, "GET", "/api/v1/openapi.json", token="")
    assert status == 200 and document["openapi"].startswith("3.1")
