"""Who is calling: the verified token as a `Principal`, available to servicers for the call.

The auth interceptor sets it for every authenticated call; `current_principal()` reads it.
Object-level checks live here too: an `agent` token acts only as the agent its `sub` names.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from ossa_runtime.auth.permissions import ADMIN_ALL, grants
from ossa_runtime.auth.tokens import Claims
from ossa_runtime.errors import PermissionDenied


@dataclass(frozen=True)
class Principal:
    """The caller of one RPC, from its verified token."""

    sub: str
    type: str  # user | agent | service
    scopes: tuple[str, ...]
    jti: str
    exp: int

    @classmethod
    def from_claims(cls, claims: Claims) -> Principal:
        return cls(sub=claims.sub, type=claims.type, scopes=claims.scope, jti=claims.jti, exp=claims.exp)

    @property
    def is_admin(self) -> bool:
        return ADMIN_ALL in self.scopes

    def has(self, permission: str) -> bool:
        return grants(self.scopes, permission)


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("ossa_principal", default=None)
_bearer: contextvars.ContextVar[str] = contextvars.ContextVar("ossa_bearer", default="")


def current_principal() -> Principal | None:
    """The caller of the RPC being served; None when the server runs without authentication."""
    return _current.get()


def caller_token() -> str:
    """The raw bearer token of the RPC being served ("" without one): for forwarding it to
    another service when this one cannot mint its own (ossa_runtime.auth.service_token)."""
    return _bearer.get()


@contextmanager
def acting_as(principal: Principal | None, bearer: str = "") -> Iterator[None]:
    """Make `principal` (and its raw token) the current caller inside the block."""
    token = _current.set(principal)
    raw = _bearer.set(bearer)
    try:
        yield
    finally:
        with suppress(ValueError):  # a streaming call's generator closed from another context
            _bearer.reset(raw)
            _current.reset(token)


def require(permission: str) -> Principal | None:
    """PermissionDenied naming `permission` unless the current caller holds it."""
    principal = _current.get()
    if principal is not None and not principal.has(permission):
        raise PermissionDenied(f"permission denied: {permission} required")
    return principal


def agent_scoped(principal: Principal | None) -> bool:
    """Whether `principal` is an agent token limited to its own agent (not an admin)."""
    return principal is not None and principal.type == "agent" and not principal.is_admin


def can_act_as_agent(principal: Principal | None, agent_id: str, agent_name: str | None = None) -> bool:
    """Whether `principal` may heartbeat, lease, renew, complete or fail as this agent.

    Admins (admin:all) may act for any agent; a user or service token holding the RPC's permission
    acts on behalf of agents it manages; an `agent` token only as the agent its `sub` names (by id
    or by name). No principal means the server runs without authentication.
    """
    if principal is None or not agent_scoped(principal):
        return True
    return principal.sub in {agent_id, agent_name} - {None, ""}


def require_agent(agent_id: str, agent_name: str | None = None) -> None:
    """PermissionDenied unless the current caller may act as the agent `agent_id` / `agent_name`."""
    principal = _current.get()
    if not can_act_as_agent(principal, agent_id, agent_name):
        assert principal is not None
        raise PermissionDenied(
            f"permission denied: agent token for {principal.sub!r} cannot act as agent {agent_name or agent_id!r}"
        )
