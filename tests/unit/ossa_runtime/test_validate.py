"""ossa_runtime.validate: JSON documents (depth, size, NUL, NaN), pages and text fields."""

from __future__ import annotations

import math
from typing import Any

import pytest
from google.protobuf import struct_pb2

from ossa_runtime import limits, validate
from ossa_runtime.errors import FieldViolation


def struct(doc: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(doc)
    return message


def nested(depth: int) -> dict[str, Any]:
    """A document `depth` levels deep: {"a": {"a": ... 1}}."""
    doc: Any = 1
    for _ in range(depth):
        doc = {"a": doc}
    result: dict[str, Any] = doc
    return result


def check(doc: dict[str, Any] | struct_pb2.Struct, limit: int = validate.MAX_DOCUMENT_BYTES) -> list[FieldViolation]:
    problems: list[FieldViolation] = []
    validate.document(doc if isinstance(doc, struct_pb2.Struct) else struct(doc), "context", problems, limit)
    return problems


def test_a_good_document_comes_back_as_a_dict() -> None:
    problems: list[FieldViolation] = []
    doc = validate.document(struct({"a": [1, "x", {"b": None}]}), "context", problems)
    assert doc == {"a": [1, "x", {"b": None}]} and problems == []


def test_depth_is_limited_and_counted() -> None:
    assert check(nested(limits.JSON_MAX_DEPTH)) == []
    (problem,) = check(nested(limits.JSON_MAX_DEPTH + 1))
    assert problem.field == "context"
    deepest = limits.JSON_MAX_DEPTH
    assert problem.description == f"must nest at most {deepest} levels deep, got {deepest + 1}"


def test_arrays_count_as_levels() -> None:
    doc: Any = 1
    for _ in range(limits.JSON_MAX_DEPTH):  # {"a": [[...[1]...]]}: 1 object + 20 arrays
        doc = [doc]
    (problem,) = check({"a": doc})
    assert "levels deep, got 21" in problem.description


@pytest.mark.parametrize("doc", [{"k": "a\x00b"}, {"a\x00": 1}, {"a": [{"b": ["\x00"]}]}])
def test_nul_characters_are_refused_anywhere(doc: dict[str, Any]) -> None:
    (problem,) = check(doc)
    assert problem == FieldViolation("context", "must not contain NUL characters (\\u0000)")


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused(number: float) -> None:
    (problem,) = check({"deep": {"x": [number]}})
    assert problem == FieldViolation("context", "must not contain NaN or Infinity")


def test_size_is_limited() -> None:
    assert check({"x": "y" * 100}, limit=200) == []
    (problem,) = check({"x": "y" * 300}, limit=200)
    assert problem.field == "context" and "must be at most 200 bytes of JSON, got 309" in problem.description


def test_a_very_deep_document_does_not_recurse() -> None:
    depth, nul = validate._scan(nested(50_000))  # iterative: far beyond Python's recursion limit
    assert (depth, nul) == (50_000, False)


def test_text_fields() -> None:
    problems: list[FieldViolation] = []
    validate.text("x" * (1024 * 1024), "name", 255, problems)
    validate.text("a\x00b", "source", 255, problems)
    validate.text("", "version", 20, problems)
    assert [(p.field, p.description) for p in problems] == [
        ("name", "must be at most 255 characters, got 1048576"),
        ("source", "must not have surrounding whitespace or control characters"),
        ("version", "is required"),
    ]


@pytest.mark.parametrize(
    ("limit", "offset", "fields"),
    [(0, 0, []), (1000, 2**31 - 1, []), (-1, 0, ["limit"]), (1001, -1, ["limit", "offset"]), (-(2**31), 0, ["limit"])],
)
def test_page(limit: int, offset: int, fields: list[str]) -> None:
    problems: list[FieldViolation] = []
    assert validate.page(limit, offset, problems) == (limit or validate.DEFAULT_LIMIT, offset)
    assert [p.field for p in problems] == fields
