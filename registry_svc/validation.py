"""Request validation for the registry: every error names the field that is wrong."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, struct_pb2

from ossa.registry.v1 import registry_pb2 as pb
from ossa_runtime.errors import FieldViolation, InvalidArgument

NAME_MAX, VERSION_MAX, CAPABILITY_MAX = 255, 20, 255
MAX_CAPABILITIES = 256
MAX_DOCUMENT_BYTES = 64 * 1024
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
# Semantic versioning 2.0.0 (https://semver.org), length-capped by the schema's VARCHAR(20).
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

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


def parse_agent_id(raw: str, field: str = "agent_id") -> str:
    if not raw:
        raise InvalidArgument(field, "is required")
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise InvalidArgument(field, f"must be a UUID, got {raw[:64]!r}") from None


def _text(value: str, field: str, maximum: int, problems: list[FieldViolation]) -> None:
    if not value:
        problems.append(FieldViolation(field, "is required"))
    elif len(value) > maximum:
        problems.append(FieldViolation(field, f"must be at most {maximum} characters, got {len(value)}"))
    elif value != value.strip() or _CONTROL.search(value):
        problems.append(FieldViolation(field, "must not have surrounding whitespace or control characters"))


def _document(message: struct_pb2.Struct, field: str, problems: list[FieldViolation]) -> dict[str, Any]:
    document: dict[str, Any] = json_format.MessageToDict(message)
    size = len(json.dumps(document))
    if size > MAX_DOCUMENT_BYTES:
        problems.append(FieldViolation(field, f"must be at most {MAX_DOCUMENT_BYTES} bytes of JSON, got {size}"))
    return document


def parse_new_agent(request: pb.CreateAgentRequest) -> NewAgent:
    problems: list[FieldViolation] = []
    _text(request.name, "name", NAME_MAX, problems)
    if request.type not in TYPE_NAMES:
        allowed = ", ".join(TYPE_NAMES.values())
        got = "nothing" if request.type == 0 else str(request.type)
        problems.append(FieldViolation("type", f"must be one of {allowed}; got {got}"))
    if not request.version:
        problems.append(FieldViolation("version", "is required"))
    elif len(request.version) > VERSION_MAX or not SEMVER.match(request.version):
        problems.append(
            FieldViolation("version", f"must be a semantic version such as 1.0.0, got {request.version[:40]!r}")
        )
    capabilities = list(request.capabilities)
    if len(capabilities) > MAX_CAPABILITIES:
        problems.append(FieldViolation("capabilities", f"must have at most {MAX_CAPABILITIES} entries"))
    seen: set[str] = set()
    for i, capability in enumerate(capabilities):
        _text(capability, f"capabilities[{i}]", CAPABILITY_MAX, problems)
        if capability in seen:
            problems.append(FieldViolation(f"capabilities[{i}]", f"duplicates {capability!r}"))
        seen.add(capability)
    config = _document(request.config, "config", problems)
    metadata = _document(request.metadata, "metadata", problems)
    if problems:
        raise InvalidArgument(problems)
    return NewAgent(request.name, TYPE_NAMES[request.type], request.version, capabilities, config, metadata)


def parse_filter(request: pb.ListAgentsRequest) -> AgentFilter:
    problems: list[FieldViolation] = []
    if request.type and request.type not in TYPE_NAMES:
        problems.append(FieldViolation("type", f"unknown agent type {request.type}"))
    if request.status and request.status not in STATUS_NAMES:
        problems.append(FieldViolation("status", f"unknown agent status {request.status}"))
    if not 0 <= request.limit <= MAX_LIMIT:
        problems.append(FieldViolation("limit", f"must be between 1 and {MAX_LIMIT}, got {request.limit}"))
    if request.offset < 0:
        problems.append(FieldViolation("offset", f"must not be negative, got {request.offset}"))
    if problems:
        raise InvalidArgument(problems)
    return AgentFilter(
        TYPE_NAMES.get(request.type),
        STATUS_NAMES.get(request.status),
        request.limit or DEFAULT_LIMIT,
        request.offset,
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
