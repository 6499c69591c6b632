"""ossa_sdk.roles: the handlers a critic, a judge, a producer and a governor are built from."""

from __future__ import annotations

from typing import Any

import pytest

from ossa_sdk.roles import (
    cautious_governor,
    critic,
    draft_writer,
    feedback_of,
    governor,
    judge,
    length_critic,
    producer,
    word_judge,
)


def review_input(output: Any, round_: int = 1, **params: Any) -> dict[str, Any]:
    review = {"step": "draft", "round": round_, "max_rounds": 3, "output": output}
    return {"params": params, "context": {}, "upstream": {}, "review": review}


async def test_a_critic_turns_a_check_into_a_verdict() -> None:
    async def check(output: Any, task_input: dict[str, Any]) -> tuple[bool, Any]:
        return output["n"] > 1, {"wanted": 2}

    handle = critic(check)
    assert await handle(review_input({"n": 1}, 2)) == {"verdict": "reject", "feedback": {"wanted": 2}, "round": 2}
    assert (await handle(review_input({"n": 5})))["verdict"] == "accept"


async def test_a_judge_scores_and_accepts_from_the_threshold() -> None:
    handle = judge(lambda output, _: output["score"], 0.5)
    assert await handle(review_input({"score": 0.7})) == {"verdict": "accept", "score": 0.7, "feedback": None,
                                                          "round": 1}  # fmt: skip
    low = await handle(review_input({"score": 0.2}))
    assert low["verdict"] == "reject" and low["feedback"] == "scored 0.2, below 0.5"


async def test_reviewers_refuse_tasks_that_are_not_reviews() -> None:
    with pytest.raises(ValueError, match="not a review"):
        await length_critic({"params": {}, "context": {}, "upstream": {}})


async def test_a_producer_gets_the_feedback_of_the_previous_round() -> None:
    seen: list[Any] = []

    def write(params: dict[str, Any], context: dict[str, Any], feedback: Any) -> dict[str, Any]:
        seen.append(feedback)
        return {"text": "x"}

    handle = producer(write)
    await handle({"params": {}, "context": {}, "upstream": {}})
    rejected = {"verdict": "reject", "feedback": "too short", "round": 1}
    await handle({"params": {}, "context": {}, "upstream": {"review": {"round": 1, "feedback": rejected}}})
    assert seen == [None, "too short"]
    assert feedback_of({"upstream": {"review": {"feedback": ["no feedback key"]}}}) == ["no feedback key"]
    with pytest.raises(TypeError, match="must return an object"):
        await producer(lambda p, c, f: "text")({"params": {}})


async def test_a_governor_turns_a_policy_into_a_decision() -> None:
    handle = governor(lambda approval, task_input: (approval["step"] == "deploy", "ok"))
    gate = {"context": {}, "approval": {"step": "deploy", "by": "governor"}}
    assert await handle(gate) == {"approved": True, "reason": "ok"}
    with pytest.raises(ValueError, match="not an approval gate"):
        await handle({"context": {}})


async def test_the_examples_for_ossa_agent_serve() -> None:
    first = await draft_writer({"params": {"topic": "roles"}, "context": {}, "upstream": {}})
    assert first == {"text": "On roles."}
    assert (await length_critic(review_input(first, min_length=40)))["verdict"] == "reject"
    assert (await length_critic(review_input({"text": "y" * 40}, min_length=40)))["verdict"] == "accept"
    assert (await word_judge(review_input({"text": "one two three four five six seven eight"})))["verdict"] == "accept"
    risky = {"context": {"risk": "high"}, "approval": {"step": "deploy"}}
    assert (await cautious_governor(risky))["approved"] is False
