"""orchestrator_svc.definition: capability_query steps, min_score and tags."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator_svc.definition import parse_definition
from ossa_runtime.errors import InvalidArgument


def test_capability_query_step() -> None:
    definition = parse_definition(
        {
            "tags": ["etl", "nightly", "etl"],
            "steps": [
                {"id": "a", "capability": "fetch"},
                {"id": "b", "capability_query": "  summarise French documents ", "min_score": 0.6, "depends_on": ["a"]},
            ],
        }
    )
    assert definition.tags == ("etl", "nightly")
    routed = definition.step("b")
    assert (routed.capability, routed.capability_query, routed.min_score) == ("", "summarise French documents", 0.6)
    assert definition.step("a").capability_query == "" and definition.step("a").min_score is None


@pytest.mark.parametrize(
    ("step", "needle"),
    [
        ({"id": "a", "capability": "x", "capability_query": "y"}, "steps[a].capability_query: give capability or"),
        ({"id": "a", "capability_query": ""}, "steps[a].capability_query: must be 1-1000 characters"),
        ({"id": "a", "capability_query": "x" * 1001}, "steps[a].capability_query"),
        ({"id": "a", "capability_query": "x", "min_score": 1.5}, "steps[a].min_score: must be a number from 0 to 1"),
        ({"id": "a", "capability": "x", "min_score": 0.5}, "steps[a].min_score"),
        ({"id": "a"}, "steps[a].capability: is required (1-255 characters) unless capability_query is given"),
    ],
)
def test_bad_routing_fields_are_named(step: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_definition({"steps": [step]})
    assert needle in str(err.value)


@pytest.mark.parametrize("tags", ["etl", [1], ["x" * 65], ["t"] * 33])
def test_bad_tags(tags: Any) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_definition({"tags": tags, "steps": [{"id": "a", "capability": "x"}]})
    assert "definition.tags: must be a list" in str(err.value)
