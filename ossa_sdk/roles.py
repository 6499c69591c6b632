"""Handlers for agent roles in a few lines: a critic, a judge, a producer that takes feedback, a governor.

A reviewed step (`"review": {...}` in the workflow) runs in rounds: the producer's output goes to a
reviewer, whose verdict accepts it or sends the step back with feedback (orchestrator_svc/reviews.py).

    from ossa_sdk import Agent
    from ossa_sdk.roles import critic, producer

    def long_enough(output, task_input):          # -> (accepted, feedback)
        text = output.get("text", "")
        return len(text) >= 40, f"{len(text)} characters; write at least 40"

    Agent("critic-1", type="critic", capabilities=["review.text"], handler=critic(long_enough)).run()

    def write(params, context, feedback):       # None in round 1, then the critic's feedback
        return {"text": "draft" if feedback is None else "a longer draft that answers: " + str(feedback)}

    Agent("writer-1", capabilities=["write"], handler=producer(write)).run()

The reviewer's task input has `review = {"step", "round", "max_rounds", "output"}`; a critic's and a
judge's output is `{"verdict": "accept"|"reject", "feedback": ..., "round": n}` (a judge adds
`"score"`), which is what the default `accept_when` (`{"field": "verdict", "equals": "accept"}`) reads.

A step with `"approval": {"by": "governor"}` first sends its gate to an agent of type governor:
`governor(policy)` turns `policy(approval, task_input) -> (approved, reason)` into that handler.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from ossa_sdk.handlers import Handler, TaskInput, TaskOutput

ACCEPT, REJECT = "accept", "reject"
Check = Callable[[Any, TaskInput], tuple[bool, Any] | Awaitable[tuple[bool, Any]]]
Score = Callable[[Any, TaskInput], float | Awaitable[float]]
Produce = Callable[[dict[str, Any], dict[str, Any], Any], Any]


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def under_review(task_input: TaskInput) -> dict[str, Any]:
    """The `review` part of a reviewer's task input: step, round, max_rounds and the output to review."""
    review = task_input.get("review")
    if not isinstance(review, dict):
        raise ValueError("this task is not a review: its input has no `review` (is the step reviewed?)")
    return review


def critic(check: Check) -> Handler:
    """A reviewer handler from `check(output, task_input) -> (accepted, feedback)` (may be async)."""

    async def handle(task_input: TaskInput) -> TaskOutput:
        review = under_review(task_input)
        accepted, feedback = await _maybe_await(check(review.get("output"), task_input))
        return {"verdict": ACCEPT if accepted else REJECT, "feedback": feedback, "round": review.get("round")}

    return handle


def judge(score: Score, threshold: float) -> Handler:
    """A reviewer handler that scores the output (`score(output, task_input)`, may be async) and
    accepts it from `threshold` up; the score is in its verdict either way."""

    async def handle(task_input: TaskInput) -> TaskOutput:
        review = under_review(task_input)
        value = float(await _maybe_await(score(review.get("output"), task_input)))
        verdict = ACCEPT if value >= threshold else REJECT
        feedback = None if verdict == ACCEPT else f"scored {value:g}, below {threshold:g}"
        return {"verdict": verdict, "score": value, "feedback": feedback, "round": review.get("round")}

    return handle


def feedback_of(task_input: TaskInput) -> Any:
    """What the reviewer said about the previous round: its verdict's `feedback` (its whole output if
    it has none); None in the first round."""
    upstream = task_input.get("upstream") or {}
    review = upstream.get("review") if isinstance(upstream, dict) else None
    verdict = review.get("feedback") if isinstance(review, dict) else None
    return verdict.get("feedback", verdict) if isinstance(verdict, dict) else verdict


def producer(produce: Produce) -> Handler:
    """A producer handler from `produce(params, context, feedback)` (may be async): `feedback` is
    None in the first round and the reviewer's verdict after a reject."""

    async def handle(task_input: TaskInput) -> TaskOutput:
        params = task_input.get("params") or {}
        context = task_input.get("context") or {}
        result = await _maybe_await(produce(params, context, feedback_of(task_input)))
        if not isinstance(result, dict):
            raise TypeError(f"a producer must return an object, not {type(result).__name__}")
        return result

    return handle


Policy = Callable[[dict[str, Any], TaskInput], tuple[bool, str] | Awaitable[tuple[bool, str]]]


def under_approval(task_input: TaskInput) -> dict[str, Any]:
    """The `approval` part of a gate's task input: step, by, capability (of the step), timeout_seconds."""
    approval = task_input.get("approval")
    if not isinstance(approval, dict):
        raise ValueError("this task is not an approval gate: its input has no `approval`")
    return approval


def governor(policy: Policy) -> Handler:
    """An approval handler from `policy(approval, task_input) -> (approved, reason)` (may be async):
    the gate's output is `{"approved": bool, "reason": str}`; the step runs only when approved."""

    async def handle(task_input: TaskInput) -> TaskOutput:
        approved, reason = await _maybe_await(policy(under_approval(task_input), task_input))
        return {"approved": bool(approved), "reason": str(reason)}

    return handle


# Examples for `ossa agent serve --handler ossa_sdk.roles:<name>` ---------------------------------


def _min_length(task_input: TaskInput) -> int:
    value = (task_input.get("params") or {}).get("min_length", 40)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 40


def _long_enough(output: Any, task_input: TaskInput) -> tuple[bool, Any]:
    text = str((output or {}).get("text", "")) if isinstance(output, dict) else ""
    needed = _min_length(task_input)
    return len(text) >= needed, None if len(text) >= needed else f"{len(text)} characters; write at least {needed}"


length_critic = critic(_long_enough)  # accepts `text` of at least params.min_length (40) characters


def _words(output: Any, task_input: TaskInput) -> float:
    return float(len(str((output or {}).get("text", "")).split())) if isinstance(output, dict) else 0.0


word_judge = judge(_words, 8.0)  # scores `text` by its words; accepts from 8 words up


def _draft(params: dict[str, Any], context: dict[str, Any], feedback: Any) -> dict[str, Any]:
    topic = str(params.get("topic") or context.get("topic") or "agents")
    if feedback is None:
        return {"text": f"On {topic}."}
    return {"text": f"On {topic}: a longer draft, rewritten after the review said: {feedback}"}


draft_writer = producer(_draft)  # writes a short draft, then a longer one once reviewed


def _cautious(approval: dict[str, Any], task_input: TaskInput) -> tuple[bool, str]:
    risk = (task_input.get("context") or {}).get("risk", "low")
    if risk == "high":
        return False, f"step {approval.get('step')} refused: the execution's context says risk=high"
    return True, f"risk={risk}"


cautious_governor = governor(_cautious)  # approves unless the execution's context says risk=high
