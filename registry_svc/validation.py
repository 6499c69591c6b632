"""Request validation for the registry: every error names the field that is wrong."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ossa.registry.v1 import registry_pb2 as pb
from ossa_runtime import validate
from ossa_runtime.errors import FieldViolation, InvalidArgument

NAME_MAX, CAPABILITY_MAX = 255, 255
MAX_CAPABILITIES = 256
MAX_DOCUMENT_BYTES = validate.MAX_DOCUMENT_BYTES
DEFAULT_LIMIT, MAX_LIMIT = validate.DEFAULT_LIMIT, validate.MAX_LIMIT

TYPE_NAMES = {v: k for k, v in pb.AgentType.Value.items() if v != pb.AgentType.type_unspecified}
STATUS_NAMES = {v: k for k, v in pb.AgentStatus.Value.items() if v != pb.AgentStatus.status_unspecified}
STATUS_VALUES = {name: value for value, name in STATUS_NAMES.items()}
TYPE_VALUES = {name: value for value, name in TYPE_NAMES.items()}


@dataclass(frozen=True)
class NewAgent:
    name: str
    type: str
    version: str
    capabilities: list[str]
    config: dict[str, Any]
    metadata: dict[str, Any]


@dataclass(frozen=True)
class AgentFilter:
    type: str | None
    status: str | None
    limit: int
    offset: int
    name: str | None = None


def parse_agent_id(raw: str, field: str = "agent_id") -> str:
    return validate.parse_uuid(raw, field)


def parse_new_agent(request: pb.CreateAgentRequest) -> NewAgent:
    problems: list[FieldViolation] = []
    validate.text(request.name, "name", NAME_MAX, problems)
    if request.type not in TYPE_NAMES:
        allowed = ", ".join(TYPE_NAMES.values())
        got = "nothing" if request.type == 0 else str(request.type)
        problems.append(FieldViolation("type", f"must be one of {allowed}; got {got}"))
    validate.version(request.version, "version", problems)
    capabilities = list(request.capabilities)
    if len(capabilities) > MAX_CAPABILITIES:
        problems.append(FieldViolation("capabilities", f"must have at most {MAX_CAPABILITIES} entries"))
    seen: set[str] = set()
    for i, capability in enumerate(capabilities):
        validate.text(capability, f"capabilities[{i}]", CAPABILITY_MAX, problems)
        if capability in seen:
            problems.append(FieldViolation(f"capabilities[{i}]", f"duplicates {capability!r}"))
        seen.add(capability)
    config = validate.document(request.config, "config", problems)
    metadata = validate.document(request.metadata, "metadata", problems)
    if problems:
        raise InvalidArgument(problems)
    return NewAgent(request.name, TYPE_NAMES[request.type], request.version, capabilities, config, metadata)


def parse_filter(request: pb.ListAgentsRequest) -> AgentFilter:
    problems: list[FieldViolation] = []
    if request.type and request.type not in TYPE_NAMES:
        problems.append(FieldViolation("type", f"unknown agent type {request.type}"))
    if request.status and request.status not in STATUS_NAMES:
        problems.append(FieldViolation("status", f"unknown agent status {request.status}"))
    limit, offset = validate.page(request.limit, request.offset, problems)
    name = validate.optional_text(request.name, "name", NAME_MAX, problems)
    if problems:
        raise InvalidArgument(problems)
    return AgentFilter(
        TYPE_NAMES.get(request.type),
        STATUS_NAMES.get(request.status),
        limit,
        offset,
        name,
    )


def parse_beat_status(value: int) -> str:
    """A heartbeat reports idle, busy or error; unset means idle."""
    if value == pb.AgentStatus.status_unspecified:
        return "idle"
    name = STATUS_NAMES.get(value)
    if name is None or name == "offline":
        raise InvalidArgument("status", "a heartbeat reports idle, busy or error")
    return name


def check_load(request: pb.HeartbeatRequest) -> float | None:
    if not request.HasField("load"):
        return None
    if not 0.0 <= request.load <= 1.0:
        raise InvalidArgument("load", f"must be between 0 and 1, got {request.load}")
    return request.load
