"""Field checks every service shares; each appends FieldViolations naming the field it checked."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from google.protobuf import json_format, struct_pb2

from ossa_runtime import limits
from ossa_runtime.errors import FieldViolation, InvalidArgument

MAX_DOCUMENT_BYTES = limits.DOCUMENT_MAX_BYTES
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
VERSION_MAX = 20
# Semantic versioning 2.0.0 (https://semver.org), length-capped by the schema's VARCHAR(20).
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def parse_uuid(raw: str, field: str) -> str:
    """The canonical form of a UUID, or InvalidArgument naming `field`."""
    if not raw:
        raise InvalidArgument(field, "is required")
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise InvalidArgument(field, f"must be a UUID, got {raw[:64]!r}") from None


def text(value: str, field: str, maximum: int, problems: list[FieldViolation]) -> None:
    if not value:
        problems.append(FieldViolation(field, "is required"))
    elif len(value) > maximum:
        problems.append(FieldViolation(field, f"must be at most {maximum} characters, got {len(value)}"))
    elif value != value.strip() or _CONTROL.search(value):
        problems.append(FieldViolation(field, "must not have surrounding whitespace or control characters"))


def optional_text(value: str, field: str, maximum: int, problems: list[FieldViolation]) -> str | None:
    """A filter value: empty means none; otherwise checked like `text`."""
    if not value:
        return None
    text(value, field, maximum, problems)
    return value


def version(value: str, field: str, problems: list[FieldViolation]) -> None:
    if not value:
        problems.append(FieldViolation(field, "is required"))
    elif len(value) > VERSION_MAX or not SEMVER.match(value):
        problems.append(FieldViolation(field, f"must be a semantic version such as 1.0.0, got {value[:40]!r}"))


def document(
    message: struct_pb2.Struct, field: str, problems: list[FieldViolation], limit: int = MAX_DOCUMENT_BYTES
) -> dict[str, Any]:
    """A Struct as a dict: at most `limit` bytes of JSON and JSON_MAX_DEPTH levels deep, without
    NUL characters (PostgreSQL's JSONB cannot store them) or NaN/Infinity (JSON has none)."""
    try:
        doc: dict[str, Any] = json_format.MessageToDict(message)
    except ValueError:  # json_format refuses NaN and Infinity in a number_value
        problems.append(FieldViolation(field, "must not contain NaN or Infinity"))
        return {}
    depth, nul = _scan(doc)
    if depth > limits.JSON_MAX_DEPTH:
        problems.append(FieldViolation(field, f"must nest at most {limits.JSON_MAX_DEPTH} levels deep, got {depth}"))
        return doc
    size = len(json.dumps(doc))
    if size > limit:
        problems.append(FieldViolation(field, f"must be at most {limit} bytes of JSON, got {size}"))
    elif nul:
        problems.append(FieldViolation(field, "must not contain NUL characters (\\u0000)"))
    return doc


def _scan(value: Any) -> tuple[int, bool]:
    """(how many levels of objects and arrays `value` nests, whether a key or string holds a NUL).

    Iterative, so no document is too deep to look at."""
    deepest, nul = 0, False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            nul = nul or any("\x00" in k for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, str):
            nul = nul or "\x00" in item
    return deepest, nul


def page(limit: int, offset: int, problems: list[FieldViolation]) -> tuple[int, int]:
    if not 0 <= limit <= MAX_LIMIT:
        problems.append(FieldViolation("limit", f"must be between 1 and {MAX_LIMIT}, got {limit}"))
    if offset < 0:
        problems.append(FieldViolation("offset", f"must not be negative, got {offset}"))
    return limit or DEFAULT_LIMIT, offset
