"""Request validation for the orchestrator: every error names the field that is wrong."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format

from orchestrator_svc.definition import parse_definition
from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_runtime import limits, validate
from ossa_runtime.errors import FieldViolation, InvalidArgument

NAME_MAX, DESCRIPTION_MAX, KEY_MAX, ERROR_MAX = 255, 4096, 255, 8192
MAX_DEFINITION_BYTES = limits.DEFINITION_MAX_BYTES
MAX_CONTEXT_BYTES = limits.CONTEXT_MAX_BYTES
MAX_OUTPUT_BYTES = limits.OUTPUT_MAX_BYTES
MAX_BUDGET_TASKS, MAX_BUDGET_SECONDS = 1_000_000, 30 * 24 * 3600

WORKFLOW_STATUS = {v: k for k, v in pb.WorkflowStatus.Value.items() if v}
EXECUTION_STATUS = {v: k for k, v in pb.ExecutionStatus.Value.items() if v}
TASK_STATUS = {v: k for k, v in pb.TaskStatus.Value.items() if v}


@dataclass(frozen=True)
class NewWorkflow:
    name: str
    version: str
    description: str
    definition: dict[str, Any]


@dataclass(frozen=True)
class StartRequest:
    workflow_id: str | None
    name: str | None
    version: str | None
    context: dict[str, Any]
    priority: int | None
    idempotency_key: str | None
    budget: dict[str, float] | None = None


def _raise(problems: list[FieldViolation]) -> None:
    if problems:
        raise InvalidArgument(problems)


def parse_new_workflow(request: pb.CreateWorkflowRequest) -> NewWorkflow:
    problems: list[FieldViolation] = []
    validate.text(request.name, "name", NAME_MAX, problems)
    validate.version(request.version, "version", problems)
    if len(request.description) > DESCRIPTION_MAX:
        problems.append(
            FieldViolation(
                "description", f"must be at most {DESCRIPTION_MAX} characters, got {len(request.description)}"
            )
        )
    elif "\x00" in request.description:
        problems.append(FieldViolation("description", "must not contain NUL characters (\\u0000)"))
    if not request.HasField("definition"):
        problems.append(FieldViolation("definition", 'is required: {"steps": [...]}'))
    definition = validate.document(request.definition, "definition", problems, MAX_DEFINITION_BYTES)
    _raise(problems)
    parse_definition(definition)
    return NewWorkflow(request.name, request.version, request.description, definition)


def parse_start(request: pb.StartExecutionRequest) -> StartRequest:
    problems: list[FieldViolation] = []
    workflow_id = None
    if request.workflow_id:
        workflow_id = validate.parse_uuid(request.workflow_id, "workflow_id")
        if request.workflow_name or request.workflow_version:
            problems.append(FieldViolation("workflow_id", "give workflow_id or workflow_name + workflow_version"))
    elif not (request.workflow_name and request.workflow_version):
        problems.append(FieldViolation("workflow_id", "is required (or workflow_name + workflow_version)"))
    else:
        validate.text(request.workflow_name, "workflow_name", NAME_MAX, problems)
        validate.version(request.workflow_version, "workflow_version", problems)
    if not 0 <= request.priority <= 10:
        problems.append(FieldViolation("priority", f"must be between 1 and 10, got {request.priority}"))
    validate.optional_text(request.idempotency_key, "idempotency_key", KEY_MAX, problems)
    context = validate.document(request.context, "context", problems, MAX_CONTEXT_BYTES)
    budget = parse_budget(request, problems)
    _raise(problems)
    return StartRequest(
        workflow_id,
        request.workflow_name or None,
        request.workflow_version or None,
        context,
        request.priority or None,
        request.idempotency_key or None,
        budget,
    )


def parse_budget(request: pb.StartExecutionRequest, problems: list[FieldViolation]) -> dict[str, float] | None:
    """The budget's bounds that are set (orchestrator_svc/budgets.py); None without a budget."""
    if not request.HasField("budget"):
        return None
    b = request.budget
    out: dict[str, float] = {}
    if b.max_tasks < 0 or b.max_tasks > MAX_BUDGET_TASKS:
        problems.append(FieldViolation("budget.max_tasks", f"must be between 1 and {MAX_BUDGET_TASKS}"))
    elif b.max_tasks:
        out["max_tasks"] = b.max_tasks
    if b.max_seconds < 0 or b.max_seconds > MAX_BUDGET_SECONDS:
        problems.append(FieldViolation("budget.max_seconds", f"must be between 1 and {MAX_BUDGET_SECONDS}"))
    elif b.max_seconds:
        out["max_seconds"] = b.max_seconds
    if not math.isfinite(b.max_cost) or b.max_cost < 0:
        problems.append(FieldViolation("budget.max_cost", "must be a positive number"))
    elif b.max_cost:
        out["max_cost"] = b.max_cost
    if not out and not problems:
        problems.append(FieldViolation("budget", "give max_tasks, max_seconds or max_cost (or no budget)"))
    return out or None


def parse_cost(request: pb.CompleteTaskRequest) -> float:
    if not math.isfinite(request.cost) or request.cost < 0:
        raise InvalidArgument("cost", f"must be a finite number of at least 0, got {request.cost!r}")
    return request.cost


def parse_page(request: Any) -> tuple[int, int]:
    problems: list[FieldViolation] = []
    page = validate.page(request.limit, request.offset, problems)
    _raise(problems)
    return page


def parse_name_filter(name: str) -> str | None:
    problems: list[FieldViolation] = []
    value = validate.optional_text(name, "name", NAME_MAX, problems)
    _raise(problems)
    return value


def parse_status(value: int, names: dict[int, str]) -> str | None:
    if value and value not in names:
        raise InvalidArgument("status", f"unknown status {value}")
    return names.get(value)


def parse_token(request: Any) -> tuple[str, int]:
    task_id = validate.parse_uuid(request.task_id, "task_id")
    if request.fencing_token <= 0:
        raise InvalidArgument("fencing_token", "is required: the token from the assignment")
    return task_id, request.fencing_token


def parse_output(request: pb.CompleteTaskRequest) -> dict[str, Any]:
    problems: list[FieldViolation] = []
    output = validate.document(request.output, "output", problems, MAX_OUTPUT_BYTES)
    _raise(problems)
    return output


def parse_error(request: pb.FailTaskRequest) -> str:
    error = request.error.replace("\x00", "").strip() or "failed without a message"
    return error[:ERROR_MAX]


def to_dict(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(message)
    return out
