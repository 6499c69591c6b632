"""Workflow definitions: a DAG of steps, validated on create; every error names step and field.

{"tags": ["etl"],
 "steps": [{"id": "fetch", "capability": "http.get", "agent_type": "worker", "input": {},
            "depends_on": [], "priority": 5, "timeout_seconds": 300, "lease_seconds": 30,
            "max_retries": 3},
           {"id": "sum", "capability_query": "summarises long documents in French",
            "min_score": 0.6, "depends_on": ["fetch"]}]}

A step names either an exact `capability` or a `capability_query` in plain words: the
orchestrator routes such a step to the best-matching live agent (orchestrator_svc/router.py).
`tags` label the workflow (searchable); they do not change how it runs.

A step may be reviewed (orchestrator_svc/reviews.py): `"review": {"by": "<capability>" or
"by_query": "<plain words>", "agent_type": "critic"|"judge", "max_rounds": 3,
"accept_when": {"field": "verdict", "equals": "accept"}, "on_exhausted": "fail"|"accept"}`.
A step may wait for an approval before it runs (orchestrator_svc/approvals.py): `"approval":
{"by": "governor"|"human", "timeout_seconds": 3600, "capability": "approval"}` (capability: which
governor agents decide; governor only).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ossa_runtime.errors import FieldViolation, InvalidArgument

AGENT_TYPES = ("orchestrator", "worker", "critic", "judge", "trainer", "governor", "monitor", "integrator")
STEP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_STEPS = 1000
CAPABILITY_MAX = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
CYCLE_SHOWN = 10  # step ids named in a dependency-cycle error
STEP_KEYS = {
    "id", "capability", "capability_query", "min_score", "agent_type", "input", "depends_on", "priority",
    "timeout_seconds", "lease_seconds", "max_retries", "review", "approval",
}  # fmt: skip
APPROVAL_KEYS = {"by", "timeout_seconds", "capability"}
APPROVERS = ("governor", "human")
APPROVAL_TIMEOUT = (3600, 1, 30 * 24 * 3600)  # default, minimum, maximum seconds
REVIEW_KEYS = {"by", "by_query", "agent_type", "max_rounds", "accept_when", "on_exhausted", "input"}
REVIEWER_TYPES = ("critic", "judge")
MAX_ROUNDS = 20
MAX_TAGS, MAX_QUERY = 32, 1000
# (default, minimum, maximum) of the integer fields.
INTS = {
    "priority": (5, 1, 10),
    "timeout_seconds": (300, 1, 7 * 24 * 3600),
    "lease_seconds": (30, 1, 3600),
    "max_retries": (3, 0, 100),
}


@dataclass(frozen=True)
class Review:
    """Who reviews a step's output, and when it is accepted (orchestrator_svc/reviews.py)."""

    by: str  # the reviewer's capability ("" with by_query)
    by_query: str = ""  # or a plain-words capability query, routed like a step's
    agent_type: str = "critic"
    max_rounds: int = 3
    accept_field: str = "verdict"
    accept_equals: Any = "accept"
    on_exhausted: str = "fail"  # or "accept": the last round's output stands
    input: dict[str, Any] = field(default_factory=dict)  # the reviewer task's params

    def accepts(self, verdict: Any) -> bool:
        return isinstance(verdict, dict) and verdict.get(self.accept_field) == self.accept_equals


@dataclass(frozen=True)
class Approval:
    """Who must approve a step before it runs, and how long they have (orchestrator_svc/approvals.py)."""

    by: str  # governor (an agent of type governor with `capability`) or human (POST .../approve)
    timeout_seconds: int = APPROVAL_TIMEOUT[0]
    capability: str = "approval"


@dataclass(frozen=True)
class Step:
    id: str
    capability: str
    agent_type: str | None = None
    input: dict[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    priority: int = 5
    timeout_seconds: int = 300
    lease_seconds: int = 30
    max_retries: int = 3
    capability_query: str = ""  # plain words instead of `capability` (then capability is "")
    min_score: float | None = None  # a routed agent must match the query at least this well
    review: Review | None = None  # a reviewer must accept the output before it counts
    approval: Approval | None = None  # someone must approve before it runs


@dataclass(frozen=True)
class Definition:
    steps: tuple[Step, ...]
    tags: tuple[str, ...] = ()

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)

    def roots(self) -> list[Step]:
        return [s for s in self.steps if not s.depends_on]

    def dependents(self, step_id: str) -> list[Step]:
        return [s for s in self.steps if step_id in s.depends_on]


def _shown(raw: Any) -> str:
    """A bad value as an error message quotes it: short (a step may hold a megabyte string)."""
    if isinstance(raw, float) and raw.is_integer() and abs(raw) < 1e15:
        raw = int(raw)  # JSON numbers arrive as doubles: 2147483648.0 reads better as 2147483648
    text = f"{raw:g}" if isinstance(raw, float) else repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."


def _int(raw: Any, where: str, name: str, problems: list[FieldViolation]) -> int:
    default, low, high = INTS[name]
    if raw is None:
        return default
    whole = isinstance(raw, int) or (isinstance(raw, float) and math.isfinite(raw) and raw.is_integer())
    if isinstance(raw, bool) or not whole:
        problems.append(FieldViolation(f"{where}.{name}", f"must be a whole number, got {_shown(raw)}"))
        return default
    if not low <= raw <= high:
        problems.append(FieldViolation(f"{where}.{name}", f"must be between {low} and {high}, got {_shown(raw)}"))
        return default
    return int(raw)


def _step(raw: Any, where: str, problems: list[FieldViolation]) -> Step | None:
    if not isinstance(raw, dict):
        problems.append(FieldViolation(where, "must be an object"))
        return None
    for key in sorted(set(raw) - STEP_KEYS):
        problems.append(FieldViolation(f"{where}.{key[:64]}", "is not a step field"))
    step_id = raw.get("id")
    if not isinstance(step_id, str) or not STEP_ID.match(step_id):
        problems.append(FieldViolation(f"{where}.id", "must be 1-64 letters, digits, '_', '-' or '.'"))
        step_id = None
    else:
        where = f"definition.steps[{step_id}]"
    capability, query = raw.get("capability"), raw.get("capability_query")
    if query is not None:
        if capability is not None:
            problems.append(
                FieldViolation(f"{where}.capability_query", "give capability or capability_query, not both")
            )
        elif not isinstance(query, str) or not query.strip() or len(query) > MAX_QUERY:
            problems.append(FieldViolation(f"{where}.capability_query", f"must be 1-{MAX_QUERY} characters"))
        capability = ""
    elif not isinstance(capability, str) or not capability.strip() or len(capability) > CAPABILITY_MAX:
        problems.append(
            FieldViolation(
                f"{where}.capability", f"is required (1-{CAPABILITY_MAX} characters) unless capability_query is given"
            )
        )
    elif _CONTROL.search(capability):
        problems.append(FieldViolation(f"{where}.capability", "must not contain control characters"))
    min_score = raw.get("min_score")
    if min_score is not None and (
        query is None
        or isinstance(min_score, bool)
        or not isinstance(min_score, int | float)
        or not 0 <= min_score <= 1
    ):
        problems.append(FieldViolation(f"{where}.min_score", "must be a number from 0 to 1, with capability_query"))
        min_score = None
    agent_type = raw.get("agent_type")
    if agent_type is not None and (not isinstance(agent_type, str) or agent_type not in AGENT_TYPES):
        problems.append(FieldViolation(f"{where}.agent_type", f"must be one of {', '.join(AGENT_TYPES)}"))
    step_input = raw.get("input", {})
    if not isinstance(step_input, dict):
        problems.append(FieldViolation(f"{where}.input", "must be an object"))
    depends_on = raw.get("depends_on", [])
    if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
        problems.append(FieldViolation(f"{where}.depends_on", "must be a list of step ids"))
        depends_on = []
    elif len(set(depends_on)) != len(depends_on):
        problems.append(FieldViolation(f"{where}.depends_on", "lists a step twice"))
    ints = {name: _int(raw.get(name), where, name, problems) for name in INTS}
    if ints["lease_seconds"] > ints["timeout_seconds"]:
        problems.append(FieldViolation(f"{where}.lease_seconds", "must not exceed timeout_seconds"))
    review = _review(raw.get("review"), where, problems)
    approval = _approval(raw.get("approval"), where, problems)
    if step_id is None or not isinstance(capability, str):
        return None
    return Step(
        step_id,
        capability,
        agent_type,
        step_input if isinstance(step_input, dict) else {},
        tuple(depends_on),
        **ints,
        capability_query=query.strip() if isinstance(query, str) else "",
        min_score=float(min_score) if min_score is not None else None,
        review=review,
        approval=approval,
    )


def _review(raw: Any, where: str, problems: list[FieldViolation]) -> Review | None:
    if raw is None:
        return None
    where = f"{where}.review"
    if not isinstance(raw, dict):
        problems.append(FieldViolation(where, "must be an object with by (or by_query)"))
        return None
    count = len(problems)
    for key in sorted(set(raw) - REVIEW_KEYS):
        problems.append(FieldViolation(f"{where}.{key[:64]}", "is not a review field"))
    by, query = raw.get("by"), raw.get("by_query")
    if (by is None) == (query is None):
        problems.append(FieldViolation(f"{where}.by", "give by (a capability) or by_query (plain words), not both"))
    elif by is not None and (not isinstance(by, str) or not by.strip() or len(by) > CAPABILITY_MAX):
        problems.append(FieldViolation(f"{where}.by", f"must be a capability of 1-{CAPABILITY_MAX} characters"))
    elif query is not None and (not isinstance(query, str) or not query.strip() or len(query) > MAX_QUERY):
        problems.append(FieldViolation(f"{where}.by_query", f"must be 1-{MAX_QUERY} characters"))
    agent_type = raw.get("agent_type", "critic")
    if agent_type not in REVIEWER_TYPES:
        problems.append(FieldViolation(f"{where}.agent_type", f"must be one of {', '.join(REVIEWER_TYPES)}"))
    rounds = raw.get("max_rounds", 3)
    if isinstance(rounds, float) and rounds.is_integer():
        rounds = int(rounds)
    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= MAX_ROUNDS:
        problems.append(FieldViolation(f"{where}.max_rounds", f"must be a whole number from 1 to {MAX_ROUNDS}"))
    accept = raw.get("accept_when", {"field": "verdict", "equals": "accept"})
    if (
        not isinstance(accept, dict)
        or set(accept) != {"field", "equals"}
        or not isinstance(accept.get("field"), str)
        or not accept["field"]
    ):
        problems.append(
            FieldViolation(f"{where}.accept_when", 'must be {"field": "<output field>", "equals": <value>}')
        )
        accept = {"field": "verdict", "equals": "accept"}
    exhausted = raw.get("on_exhausted", "fail")
    if exhausted not in ("fail", "accept"):
        problems.append(FieldViolation(f"{where}.on_exhausted", "must be fail or accept"))
    params = raw.get("input", {})
    if not isinstance(params, dict):
        problems.append(FieldViolation(f"{where}.input", "must be an object"))
    if len(problems) > count:
        return None
    return Review(
        by.strip() if isinstance(by, str) else "",
        query.strip() if isinstance(query, str) else "",
        agent_type,
        int(rounds),
        accept["field"],
        accept["equals"],
        exhausted,
        params,
    )


def _approval(raw: Any, where: str, problems: list[FieldViolation]) -> Approval | None:
    if raw is None:
        return None
    where = f"{where}.approval"
    if not isinstance(raw, dict):
        problems.append(FieldViolation(where, 'must be an object such as {"by": "human"}'))
        return None
    count = len(problems)
    for key in sorted(set(raw) - APPROVAL_KEYS):
        problems.append(FieldViolation(f"{where}.{key[:64]}", "is not an approval field"))
    by = raw.get("by")
    if by not in APPROVERS:
        problems.append(FieldViolation(f"{where}.by", f"must be one of {', '.join(APPROVERS)}"))
    default, low, high = APPROVAL_TIMEOUT
    timeout = raw.get("timeout_seconds", default)
    if isinstance(timeout, float) and timeout.is_integer():
        timeout = int(timeout)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not low <= timeout <= high:
        problems.append(FieldViolation(f"{where}.timeout_seconds", f"must be a whole number from {low} to {high}"))
    capability = raw.get("capability", "approval")
    if by == "human" and "capability" in raw:
        problems.append(FieldViolation(f"{where}.capability", "is for governor approvals only"))
    elif not isinstance(capability, str) or not capability.strip() or len(capability) > CAPABILITY_MAX:
        problems.append(FieldViolation(f"{where}.capability", f"must be 1-{CAPABILITY_MAX} characters"))
    if len(problems) > count:
        return None
    return Approval(str(by), int(timeout), str(capability).strip())


def _tags(raw: Any, problems: list[FieldViolation]) -> tuple[str, ...]:
    if raw is None:
        return ()
    if (
        not isinstance(raw, list)
        or len(raw) > MAX_TAGS
        or not all(isinstance(t, str) and 0 < len(t) <= 64 and not _CONTROL.search(t) for t in raw)
    ):
        problems.append(
            FieldViolation(
                "definition.tags",
                f"must be a list of at most {MAX_TAGS} strings of 1-64 characters, without control characters",
            )
        )
        return ()
    return tuple(dict.fromkeys(raw))


def _find_cycle(steps: list[Step]) -> list[str]:
    """One dependency cycle, each step followed by one it depends on (empty when the graph is a
    DAG). Kahn's algorithm removes every step that can run; each step left over waits for another
    left-over step, so following those waits from any of them must come back round."""
    waiting = {s.id: set(s.depends_on) for s in steps}
    dependents: dict[str, list[str]] = {}
    for s in steps:
        for dep in s.depends_on:
            dependents.setdefault(dep, []).append(s.id)
    ready = [sid for sid, deps in waiting.items() if not deps]
    while ready:
        done = ready.pop()
        del waiting[done]
        for sid in dependents.get(done, ()):
            deps = waiting[sid]
            deps.discard(done)
            if not deps:
                ready.append(sid)
    if not waiting:
        return []
    path: list[str] = []
    seen: dict[str, int] = {}
    current = min(waiting)
    while current not in seen:
        seen[current] = len(path)
        path.append(current)
        current = min(waiting[current])
    return path[seen[current] :]


def _cycle_message(cycle: list[str]) -> str:
    shown = ", ".join(cycle[:CYCLE_SHOWN])
    more = len(cycle) - CYCLE_SHOWN
    return f"dependency cycle through {shown}" + (f" and {more} more steps" if more > 0 else "")


def parse_definition(raw: Any) -> Definition:
    """Validate a definition document; raises InvalidArgument naming each bad step and field."""
    problems: list[FieldViolation] = []
    if not isinstance(raw, dict):
        raise InvalidArgument("definition", "must be an object with a `steps` list")
    for key in sorted(set(raw) - {"steps", "tags"}):
        problems.append(FieldViolation(f"definition.{key[:64]}", "is not a definition field"))
    raw_steps = raw.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise InvalidArgument("definition.steps", "must be a non-empty list of steps")
    if len(raw_steps) > MAX_STEPS:
        raise InvalidArgument("definition.steps", f"must have at most {MAX_STEPS} steps, got {len(raw_steps)}")
    tags = _tags(raw.get("tags"), problems)
    steps = [s for i, r in enumerate(raw_steps) if (s := _step(r, f"definition.steps[{i}]", problems))]
    seen: set[str] = set()
    for s in steps:
        if s.id in seen:
            problems.append(FieldViolation(f"definition.steps[{s.id}].id", f"duplicates step id {s.id!r}"))
        seen.add(s.id)
    for s in steps:
        for dep in s.depends_on:
            if dep not in seen:
                problems.append(FieldViolation(f"definition.steps[{s.id}].depends_on", f"unknown step {_shown(dep)}"))
            elif dep == s.id:
                problems.append(FieldViolation(f"definition.steps[{s.id}].depends_on", "depends on itself"))
    if not problems:
        cycle = _find_cycle(steps)
        if cycle:
            problems.append(FieldViolation("definition.steps", _cycle_message(cycle)))
    if problems:
        raise InvalidArgument(problems)
    return Definition(tuple(steps), tags)
