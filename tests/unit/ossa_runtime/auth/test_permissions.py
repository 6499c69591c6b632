"""ossa_runtime.auth.permissions: the spec's permissions and roles, and every RPC in one table."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pb2

from ossa_runtime.auth import permissions as p

DESCRIPTOR_SET = Path(__file__).resolve().parents[4] / "gen" / "ossa" / "ossa.binpb"


def all_rpcs() -> set[str]:
    """Every RPC of every OSSA service, from the generated descriptor set (what Envoy serves)."""
    files = descriptor_pb2.FileDescriptorSet()
    files.ParseFromString(DESCRIPTOR_SET.read_bytes())
    return {
        f"/{f.package}.{service.name}/{method.name}"
        for f in files.file
        if f.package.startswith("ossa.")
        for service in f.service
        for method in service.method
    }


def test_permissions_are_the_specs() -> None:
    assert p.PERMISSIONS == {
        "agent:read": "Read agent information",
        "agent:write": "Create/update agents",
        "agent:delete": "Delete agents",
        "workflow:read": "Read workflows",
        "workflow:write": "Create/update workflows",
        "workflow:execute": "Execute workflows",
        "metrics:read": "Read metrics",
        "admin:all": "Full administrative access",
    }


def test_roles_are_the_specs() -> None:
    assert {role: list(scopes) for role, scopes in p.ROLES.items()} == {
        "viewer": ["agent:read", "workflow:read", "metrics:read"],
        "operator": ["agent:read", "agent:write", "workflow:read", "workflow:execute"],
        "admin": ["admin:all"],
    }


def test_every_rpc_is_in_the_table_exactly_once() -> None:
    rpcs = all_rpcs()
    assert len(rpcs) >= 20  # the descriptor was read
    missing = rpcs - p.RPC_PERMISSIONS.keys()
    assert not missing, f"RPCs without a permission in ossa_runtime/auth/permissions.py: {sorted(missing)}"
    stale = p.RPC_PERMISSIONS.keys() - rpcs
    assert not stale, f"table rows for RPCs that do not exist: {sorted(stale)}"


def test_every_row_is_one_permission_or_public_or_authenticated() -> None:
    allowed = set(p.PERMISSIONS) | {p.PUBLIC, p.AUTHENTICATED}
    assert {m: v for m, v in p.RPC_PERMISSIONS.items() if v not in allowed} == {}


def test_only_health_reflection_login_and_the_platform_card_are_public() -> None:
    public = {m for m, v in p.RPC_PERMISSIONS.items() if v == p.PUBLIC}
    assert public <= {
        "/ossa.gateway.v1.GatewayService/GetHealth",
        "/ossa.auth.v1.AuthService/Login",
        "/ossa.gateway.v1.GatewayService/GetPlatformCard",  # A2A discovery (docs/roles.md)
    }
    assert p.required_permission("/grpc.health.v1.Health/Check") == p.PUBLIC
    assert p.required_permission("/grpc.health.v1.Health/Watch") == p.PUBLIC
    assert p.required_permission("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo") == p.PUBLIC
    assert p.required_permission("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo") == p.PUBLIC


def test_unknown_methods_have_no_row() -> None:
    assert p.required_permission("/ossa.registry.v1.AgentRegistryService/Nope") is None
    assert p.required_permission("/grpc.health.v1.HealthX/Check") is None


def test_grants() -> None:
    assert p.grants(p.ROLES["viewer"], "agent:read")
    assert not p.grants(p.ROLES["viewer"], "agent:write")
    assert p.grants(p.ROLES["admin"], "agent:delete")  # admin:all grants everything
    assert not p.grants(p.ROLES["operator"], "agent:delete")
    assert p.grants((), p.AUTHENTICATED) and p.grants((), p.PUBLIC)


def test_scopes_for_role() -> None:
    assert p.scopes_for_role("operator") == p.ROLES["operator"]
    try:
        p.scopes_for_role("root")
    except ValueError as err:
        assert "root" in str(err) and "viewer" in str(err)
    else:
        raise AssertionError("unknown role accepted")
