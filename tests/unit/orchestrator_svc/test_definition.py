"""orchestrator_svc.definition: capability_query steps, min_score and tags."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator_svc.definition import MAX_STEPS, parse_definition
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


def steps(count: int, **step: Any) -> list[dict[str, Any]]:
    return [{"id": f"s{i}", "capability": "x", **step} for i in range(count)]


def test_ten_thousand_steps_are_refused_at_once() -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_definition({"steps": steps(10_000)})
    assert str(err.value) == "invalid request: definition.steps: must have at most 1000 steps, got 10000"
    assert len(parse_definition({"steps": steps(MAX_STEPS)}).steps) == MAX_STEPS


def test_a_cycle_through_a_thousand_steps_names_ten_of_them() -> None:
    chain = [{"id": f"s{i}", "capability": "x", "depends_on": [f"s{(i + 1) % 1000}"]} for i in range(1000)]
    with pytest.raises(InvalidArgument) as err:
        parse_definition({"steps": chain})
    (violation,) = err.value.violations
    assert violation.field == "definition.steps"
    assert violation.description == "dependency cycle through s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 and 990 more steps"


def test_a_cycle_behind_a_step_is_found_and_only_it_is_named() -> None:
    definition = {
        "steps": [
            {"id": "a", "capability": "x", "depends_on": ["c"]},  # waits for the cycle, is not on it
            {"id": "b", "capability": "x", "depends_on": ["d"]},
            {"id": "c", "capability": "x", "depends_on": ["b"]},
            {"id": "d", "capability": "x", "depends_on": ["c"]},
            {"id": "e", "capability": "x"},
        ]
    }
    with pytest.raises(InvalidArgument) as err:
        parse_definition(definition)
    assert "dependency cycle through c, b, d" in str(err.value)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (-1, "priority: must be between 1 and 10, got -1"),
        (2**31, "priority: must be between 1 and 10, got 2147483648"),
        (float(2**31), "priority: must be between 1 and 10, got 2147483648"),
        (1e300, "priority: must be between 1 and 10, got 1e+300"),
        (float("nan"), "priority: must be a whole number, got nan"),
        (float("inf"), "priority: must be a whole number, got inf"),
        (2.5, "priority: must be a whole number, got 2.5"),
        ("x" * 100_000, "priority: must be a whole number, got 'xxxxxxxx"),
        (True, "priority: must be a whole number, got True"),
    ],
)
def test_bad_integers_are_named_and_short(value: Any, needle: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_definition({"steps": [{"id": "a", "capability": "x", "priority": value}]})
    assert needle in str(err.value) and len(str(err.value)) < 200


def test_huge_strings_are_not_echoed() -> None:
    huge = "y" * (1024 * 1024)
    with pytest.raises(InvalidArgument) as err:
        parse_definition({huge: 1, "steps": [{"id": "a", "capability": huge, "depends_on": [huge], huge: 2}]})
    assert {v.field for v in err.value.violations} == {
        f"definition.{'y' * 64}",
        f"definition.steps[0].{'y' * 64}",
        "definition.steps[a].capability",
        "definition.steps[a].depends_on",
    }
    assert len(str(err.value)) < 1000


@pytest.mark.parametrize("capability", ["a\nb", "a\x00", "\x7f"])
def test_control_characters_in_a_capability(capability: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_definition({"steps": [{"id": "a", "capability": capability}]})
    assert "definition.steps[a].capability: must not contain control characters" in str(err.value)
