"""Request checks: every problem is an InvalidArgument naming its field."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf import timestamp_pb2

from ossa.orchestrator.v1 import orchestrator_pb2
from ossa.registry.v1 import registry_pb2
from ossa.search.v1 import search_pb2 as pb
from ossa_runtime import validate
from ossa_runtime.errors import FieldViolation, InvalidArgument

QUERY_MAX = 1000
DEFAULT_LIMIT, MAX_LIMIT = 10, 100
SOURCE_MAX = 255
TAG_MAX, TAGS_MAX = 255, 20
CONTENT_MAX = 200_000  # characters per document (about 200 chunks, embedded within the request)


@dataclass(frozen=True)
class AgentQuery:
    query: str
    type: str | None
    status: str | None
    limit: int


@dataclass(frozen=True)
class WorkflowQuery:
    query: str
    status: str | None
    tags: list[str]
    limit: int


@dataclass(frozen=True)
class KnowledgeQuery:
    query: str
    source: str | None
    start: datetime | None
    end: datetime | None
    limit: int


@dataclass(frozen=True)
class NewKnowledge:
    content: str
    source: str
    metadata: dict[str, Any]
    timestamp: datetime


def _query(value: str, problems: list[FieldViolation]) -> str:
    text = value.strip()
    if not text:
        problems.append(FieldViolation("query", "is required"))
    elif len(text) > QUERY_MAX:
        problems.append(FieldViolation("query", f"must be at most {QUERY_MAX} characters, got {len(text)}"))
    elif "\x00" in text:
        problems.append(FieldViolation("query", "must not contain NUL characters"))
    return text


def _limit(value: int, problems: list[FieldViolation]) -> int:
    if not 0 <= value <= MAX_LIMIT:
        problems.append(FieldViolation("limit", f"must be between 1 and {MAX_LIMIT}, got {value}"))
    return value or DEFAULT_LIMIT


def _enum_name(enum: Any, value: int, field: str, problems: list[FieldViolation]) -> str | None:
    if value == 0:
        return None
    if value not in enum.values():
        problems.append(FieldViolation(field, f"unknown value {value}"))
        return None
    return str(enum.Name(value))


def _timestamp(message: Any, name: str, problems: list[FieldViolation]) -> datetime | None:
    if not message.HasField(name):
        return None
    ts: timestamp_pb2.Timestamp = getattr(message, name)
    try:
        return ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        problems.append(FieldViolation(name, "is not a valid timestamp"))
        return None


def _raise(problems: list[FieldViolation]) -> None:
    if problems:
        raise InvalidArgument(problems)


def parse_agent_query(request: pb.SearchAgentsRequest) -> AgentQuery:
    problems: list[FieldViolation] = []
    query = _query(request.query, problems)
    agent_type = _enum_name(registry_pb2.AgentType.Value, request.type, "type", problems)
    status = _enum_name(registry_pb2.AgentStatus.Value, request.status, "status", problems)
    limit = _limit(request.limit, problems)
    _raise(problems)
    return AgentQuery(query, agent_type, status, limit)


def parse_workflow_query(request: pb.SearchWorkflowsRequest) -> WorkflowQuery:
    problems: list[FieldViolation] = []
    query = _query(request.query, problems)
    status = _enum_name(orchestrator_pb2.WorkflowStatus.Value, request.status, "status", problems)
    if status == "draft":
        problems.append(FieldViolation("status", "drafts are not searchable: use published or deprecated"))
    if len(request.tags) > TAGS_MAX:
        problems.append(FieldViolation("tags", f"at most {TAGS_MAX} tags, got {len(request.tags)}"))
    for i, tag in enumerate(request.tags):
        validate.text(tag, f"tags[{i}]", TAG_MAX, problems)
    limit = _limit(request.limit, problems)
    _raise(problems)
    return WorkflowQuery(query, status, list(request.tags), limit)


def parse_knowledge_query(request: pb.SearchKnowledgeRequest) -> KnowledgeQuery:
    problems: list[FieldViolation] = []
    query = _query(request.query, problems)
    source = validate.optional_text(request.source, "source", SOURCE_MAX, problems)
    start = _timestamp(request, "from", problems)
    end = _timestamp(request, "to", problems)
    if start is not None and end is not None and start > end:
        problems.append(FieldViolation("from", "must not be after `to`"))
    limit = _limit(request.limit, problems)
    _raise(problems)
    return KnowledgeQuery(query, source, start, end, limit)


def parse_new_knowledge(request: pb.AddKnowledgeRequest) -> NewKnowledge:
    problems: list[FieldViolation] = []
    if not request.content.strip():
        problems.append(FieldViolation("content", "is required"))
    elif len(request.content) > CONTENT_MAX:
        problems.append(
            FieldViolation("content", f"must be at most {CONTENT_MAX} characters, got {len(request.content)}")
        )
    elif "\x00" in request.content:
        problems.append(FieldViolation("content", "must not contain NUL characters"))
    validate.text(request.source, "source", SOURCE_MAX, problems)
    metadata = validate.document(request.metadata, "metadata", problems)
    timestamp = _timestamp(request, "timestamp", problems)
    _raise(problems)
    return NewKnowledge(request.content, request.source, metadata, timestamp or datetime.now(UTC))


def parse_document_id(value: str) -> str:
    return validate.parse_uuid(value, "document_id")
