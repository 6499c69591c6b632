"""The spec's permissions and roles, and the one table that says what every RPC requires.

Every RPC of every service in protos/ appears in `RPC_PERMISSIONS` exactly once: with the one
permission it needs, or `PUBLIC` (no token at all: health, reflection, the health report, login),
or `AUTHENTICATED` (any valid token). `admin:all` grants everything. A unit test fails when an
RPC of the generated descriptor is missing here, so a new RPC cannot ship unprotected by accident.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

AGENT_READ: Final = "agent:read"
AGENT_WRITE: Final = "agent:write"
AGENT_DELETE: Final = "agent:delete"
WORKFLOW_READ: Final = "workflow:read"
WORKFLOW_WRITE: Final = "workflow:write"
WORKFLOW_EXECUTE: Final = "workflow:execute"
METRICS_READ: Final = "metrics:read"
ADMIN_ALL: Final = "admin:all"

# The spec's "Permission model", exactly.
PERMISSIONS: Final[dict[str, str]] = {
    AGENT_READ: "Read agent information",
    AGENT_WRITE: "Create/update agents",
    AGENT_DELETE: "Delete agents",
    WORKFLOW_READ: "Read workflows",
    WORKFLOW_WRITE: "Create/update workflows",
    WORKFLOW_EXECUTE: "Execute workflows",
    METRICS_READ: "Read metrics",
    ADMIN_ALL: "Full administrative access",
}

# The spec's "Role-based access control", exactly.
ROLES: Final[dict[str, tuple[str, ...]]] = {
    "viewer": (AGENT_READ, WORKFLOW_READ, METRICS_READ),
    "operator": (AGENT_READ, AGENT_WRITE, WORKFLOW_READ, WORKFLOW_EXECUTE),
    "admin": (ADMIN_ALL,),
}

PUBLIC: Final = "public"  # no token needed
AUTHENTICATED: Final = "authenticated"  # any valid token, no particular permission

_REGISTRY = "/ossa.registry.v1.AgentRegistryService/"
_ORCHESTRATOR = "/ossa.orchestrator.v1.OrchestratorService/"
_MONITORING = "/ossa.monitoring.v1.MonitoringService/"
_GATEWAY = "/ossa.gateway.v1.GatewayService/"
_AUTH = "/ossa.auth.v1.AuthService/"
_SEARCH = "/ossa.search.v1.SearchService/"

# Full gRPC method name → the permission it requires (or PUBLIC / AUTHENTICATED).
RPC_PERMISSIONS: Final[dict[str, str]] = {
    # Registry
    _REGISTRY + "CreateAgent": AGENT_WRITE,
    _REGISTRY + "ListAgents": AGENT_READ,
    _REGISTRY + "GetAgent": AGENT_READ,
    _REGISTRY + "GetAgentCard": AGENT_READ,
    _REGISTRY + "DeleteAgent": AGENT_DELETE,
    _REGISTRY + "Heartbeat": AGENT_WRITE,  # an agent token may beat only as itself (object level)
    # Orchestrator: workflow definitions
    _ORCHESTRATOR + "CreateWorkflow": WORKFLOW_WRITE,
    _ORCHESTRATOR + "ListWorkflows": WORKFLOW_READ,
    _ORCHESTRATOR + "GetWorkflow": WORKFLOW_READ,
    _ORCHESTRATOR + "PublishWorkflow": WORKFLOW_WRITE,
    _ORCHESTRATOR + "DeprecateWorkflow": WORKFLOW_WRITE,
    # Orchestrator: executions
    _ORCHESTRATOR + "StartExecution": WORKFLOW_EXECUTE,
    _ORCHESTRATOR + "StartExecutions": WORKFLOW_EXECUTE,
    _ORCHESTRATOR + "GetExecution": WORKFLOW_READ,
    _ORCHESTRATOR + "WatchExecution": WORKFLOW_READ,
    _ORCHESTRATOR + "ListExecutions": WORKFLOW_READ,
    _ORCHESTRATOR + "CancelExecution": WORKFLOW_EXECUTE,
    _ORCHESTRATOR + "ListExecutionTasks": WORKFLOW_READ,
    _ORCHESTRATOR + "GetTask": WORKFLOW_READ,
    _ORCHESTRATOR + "ApproveTask": WORKFLOW_EXECUTE,  # a person's decision on an approval gate
    _ORCHESTRATOR + "RejectTask": WORKFLOW_EXECUTE,
    # Orchestrator: the agents' side (leases); an agent token acts only as itself (object level)
    _ORCHESTRATOR + "Work": WORKFLOW_EXECUTE,
    _ORCHESTRATOR + "RenewLease": WORKFLOW_EXECUTE,
    _ORCHESTRATOR + "CompleteTask": WORKFLOW_EXECUTE,
    _ORCHESTRATOR + "FailTask": WORKFLOW_EXECUTE,
    # Monitoring: agents push their own metrics (agent:write), readers query them
    _MONITORING + "PushMetrics": AGENT_WRITE,
    _MONITORING + "IngestMetrics": AGENT_WRITE,
    _MONITORING + "QueryMetrics": METRICS_READ,
    # Gateway: the aggregated health report is public like every health check
    _GATEWAY + "GetHealth": PUBLIC,
    # A2A discovery: the platform's agent card at /.well-known/agent-card.json is public, as A2A expects
    _GATEWAY + "GetPlatformCard": PUBLIC,
    # Semantic search: reading follows what is searched; the knowledge base is workflow material
    _SEARCH + "SearchAgents": AGENT_READ,
    _SEARCH + "SearchWorkflows": WORKFLOW_READ,
    _SEARCH + "SearchKnowledge": WORKFLOW_READ,
    _SEARCH + "AddKnowledge": WORKFLOW_WRITE,
    _SEARCH + "DeleteKnowledge": WORKFLOW_WRITE,
    _SEARCH + "Reindex": ADMIN_ALL,
    _SEARCH + "Snapshot": ADMIN_ALL,
    # Sessions and API keys (auth_svc.servicer): login trades an API key for a token, so needs none
    _AUTH + "Login": PUBLIC,
    _AUTH + "Logout": AUTHENTICATED,  # ends the caller's own session (another user's: admin only)
    _AUTH + "CreateApiKey": ADMIN_ALL,
    _AUTH + "ListApiKeys": ADMIN_ALL,
    _AUTH + "RevokeApiKey": ADMIN_ALL,
    _AUTH + "RevokeToken": ADMIN_ALL,
}

# Whole services that need no token: standard health checking and server reflection.
PUBLIC_SERVICE_PREFIXES: Final = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def required_permission(method: str) -> str | None:
    """What `method` requires: a permission, PUBLIC or AUTHENTICATED; None for an unknown method.

    Unknown methods are refused (deny by default) by the interceptor.
    """
    if method.startswith(PUBLIC_SERVICE_PREFIXES):
        return PUBLIC
    return RPC_PERMISSIONS.get(method)


def scopes_for_role(role: str) -> tuple[str, ...]:
    """The permissions of one of the spec's roles; ValueError naming the choices otherwise."""
    try:
        return ROLES[role]
    except KeyError:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}") from None


def grants(scopes: Iterable[str], permission: str) -> bool:
    """Whether a token with `scopes` may do what needs `permission` (admin:all grants all)."""
    if permission in (PUBLIC, AUTHENTICATED):
        return True
    held = set(scopes)
    return ADMIN_ALL in held or permission in held
