import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReceiptKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECEIPT_KIND_UNSPECIFIED: _ClassVar[ReceiptKind]
    RECEIPT_KIND_COMPLETION: _ClassVar[ReceiptKind]
    RECEIPT_KIND_FAILURE: _ClassVar[ReceiptKind]
    RECEIPT_KIND_RENEWAL: _ClassVar[ReceiptKind]
RECEIPT_KIND_UNSPECIFIED: ReceiptKind
RECEIPT_KIND_COMPLETION: ReceiptKind
RECEIPT_KIND_FAILURE: ReceiptKind
RECEIPT_KIND_RENEWAL: ReceiptKind

class WorkflowStatus(_message.Message):
    __slots__ = ()
    class Value(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        workflow_status_unspecified: _ClassVar[WorkflowStatus.Value]
        draft: _ClassVar[WorkflowStatus.Value]
        published: _ClassVar[WorkflowStatus.Value]
        deprecated: _ClassVar[WorkflowStatus.Value]
    workflow_status_unspecified: WorkflowStatus.Value
    draft: WorkflowStatus.Value
    published: WorkflowStatus.Value
    deprecated: WorkflowStatus.Value
    def __init__(self) -> None: ...

class ExecutionStatus(_message.Message):
    __slots__ = ()
    class Value(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        execution_status_unspecified: _ClassVar[ExecutionStatus.Value]
        pending: _ClassVar[ExecutionStatus.Value]
        running: _ClassVar[ExecutionStatus.Value]
        completed: _ClassVar[ExecutionStatus.Value]
        failed: _ClassVar[ExecutionStatus.Value]
        cancelled: _ClassVar[ExecutionStatus.Value]
        waiting_approval: _ClassVar[ExecutionStatus.Value]
    execution_status_unspecified: ExecutionStatus.Value
    pending: ExecutionStatus.Value
    running: ExecutionStatus.Value
    completed: ExecutionStatus.Value
    failed: ExecutionStatus.Value
    cancelled: ExecutionStatus.Value
    waiting_approval: ExecutionStatus.Value
    def __init__(self) -> None: ...

class TaskStatus(_message.Message):
    __slots__ = ()
    class Value(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        task_status_unspecified: _ClassVar[TaskStatus.Value]
        pending: _ClassVar[TaskStatus.Value]
        assigned: _ClassVar[TaskStatus.Value]
        running: _ClassVar[TaskStatus.Value]
        completed: _ClassVar[TaskStatus.Value]
        failed: _ClassVar[TaskStatus.Value]
        waiting_approval: _ClassVar[TaskStatus.Value]
    task_status_unspecified: TaskStatus.Value
    pending: TaskStatus.Value
    assigned: TaskStatus.Value
    running: TaskStatus.Value
    completed: TaskStatus.Value
    failed: TaskStatus.Value
    waiting_approval: TaskStatus.Value
    def __init__(self) -> None: ...

class Workflow(_message.Message):
    __slots__ = ("id", "name", "version", "description", "definition", "status", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    version: str
    description: str
    definition: _struct_pb2.Struct
    status: WorkflowStatus.Value
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., definition: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., status: _Optional[_Union[WorkflowStatus.Value, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Execution(_message.Message):
    __slots__ = ("id", "workflow_id", "status", "started_at", "completed_at", "context", "results", "error", "retry_count", "priority", "trace_id", "budget", "spent_cost")
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    SPENT_COST_FIELD_NUMBER: _ClassVar[int]
    id: str
    workflow_id: str
    status: ExecutionStatus.Value
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    context: _struct_pb2.Struct
    results: _struct_pb2.Struct
    error: str
    retry_count: int
    priority: int
    trace_id: str
    budget: Budget
    spent_cost: float
    def __init__(self, id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., status: _Optional[_Union[ExecutionStatus.Value, str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., results: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error: _Optional[str] = ..., retry_count: _Optional[int] = ..., priority: _Optional[int] = ..., trace_id: _Optional[str] = ..., budget: _Optional[_Union[Budget, _Mapping]] = ..., spent_cost: _Optional[float] = ...) -> None: ...

class TaskAttempt(_message.Message):
    __slots__ = ("attempt", "agent_id", "fencing_token", "outcome", "error", "started_at", "finished_at", "late_results")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    LATE_RESULTS_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    agent_id: str
    fencing_token: int
    outcome: str
    error: str
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    late_results: int
    def __init__(self, attempt: _Optional[int] = ..., agent_id: _Optional[str] = ..., fencing_token: _Optional[int] = ..., outcome: _Optional[str] = ..., error: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., late_results: _Optional[int] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("id", "execution_id", "agent_id", "name", "status", "priority", "input", "output", "error", "started_at", "completed_at", "timeout_seconds", "capability", "agent_type", "attempt", "max_retries", "lease_seconds", "lease_expires_at", "attempts", "capability_query", "routed_agent_id", "routing_score", "routing_note")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    AGENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_QUERY_FIELD_NUMBER: _ClassVar[int]
    ROUTED_AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTING_SCORE_FIELD_NUMBER: _ClassVar[int]
    ROUTING_NOTE_FIELD_NUMBER: _ClassVar[int]
    id: str
    execution_id: str
    agent_id: str
    name: str
    status: TaskStatus.Value
    priority: int
    input: _struct_pb2.Struct
    output: _struct_pb2.Struct
    error: str
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    timeout_seconds: int
    capability: str
    agent_type: str
    attempt: int
    max_retries: int
    lease_seconds: int
    lease_expires_at: _timestamp_pb2.Timestamp
    attempts: _containers.RepeatedCompositeFieldContainer[TaskAttempt]
    capability_query: str
    routed_agent_id: str
    routing_score: float
    routing_note: str
    def __init__(self, id: _Optional[str] = ..., execution_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[TaskStatus.Value, str]] = ..., priority: _Optional[int] = ..., input: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., output: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., timeout_seconds: _Optional[int] = ..., capability: _Optional[str] = ..., agent_type: _Optional[str] = ..., attempt: _Optional[int] = ..., max_retries: _Optional[int] = ..., lease_seconds: _Optional[int] = ..., lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempts: _Optional[_Iterable[_Union[TaskAttempt, _Mapping]]] = ..., capability_query: _Optional[str] = ..., routed_agent_id: _Optional[str] = ..., routing_score: _Optional[float] = ..., routing_note: _Optional[str] = ...) -> None: ...

class CreateWorkflowRequest(_message.Message):
    __slots__ = ("name", "version", "description", "definition")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    description: str
    definition: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., definition: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class CreateWorkflowResponse(_message.Message):
    __slots__ = ("workflow",)
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    workflow: Workflow
    def __init__(self, workflow: _Optional[_Union[Workflow, _Mapping]] = ...) -> None: ...

class ListWorkflowsRequest(_message.Message):
    __slots__ = ("status", "name", "limit", "offset")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    status: WorkflowStatus.Value
    name: str
    limit: int
    offset: int
    def __init__(self, status: _Optional[_Union[WorkflowStatus.Value, str]] = ..., name: _Optional[str] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ListWorkflowsResponse(_message.Message):
    __slots__ = ("workflows",)
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    workflows: _containers.RepeatedCompositeFieldContainer[Workflow]
    def __init__(self, workflows: _Optional[_Iterable[_Union[Workflow, _Mapping]]] = ...) -> None: ...

class GetWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id",)
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    def __init__(self, workflow_id: _Optional[str] = ...) -> None: ...

class GetWorkflowResponse(_message.Message):
    __slots__ = ("workflow",)
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    workflow: Workflow
    def __init__(self, workflow: _Optional[_Union[Workflow, _Mapping]] = ...) -> None: ...

class PublishWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id",)
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    def __init__(self, workflow_id: _Optional[str] = ...) -> None: ...

class PublishWorkflowResponse(_message.Message):
    __slots__ = ("workflow",)
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    workflow: Workflow
    def __init__(self, workflow: _Optional[_Union[Workflow, _Mapping]] = ...) -> None: ...

class DeprecateWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id",)
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    def __init__(self, workflow_id: _Optional[str] = ...) -> None: ...

class DeprecateWorkflowResponse(_message.Message):
    __slots__ = ("workflow",)
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    workflow: Workflow
    def __init__(self, workflow: _Optional[_Union[Workflow, _Mapping]] = ...) -> None: ...

class StartExecutionRequest(_message.Message):
    __slots__ = ("workflow_id", "workflow_name", "workflow_version", "context", "priority", "idempotency_key", "budget")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    workflow_name: str
    workflow_version: str
    context: _struct_pb2.Struct
    priority: int
    idempotency_key: str
    budget: Budget
    def __init__(self, workflow_id: _Optional[str] = ..., workflow_name: _Optional[str] = ..., workflow_version: _Optional[str] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., priority: _Optional[int] = ..., idempotency_key: _Optional[str] = ..., budget: _Optional[_Union[Budget, _Mapping]] = ...) -> None: ...

class Budget(_message.Message):
    __slots__ = ("max_tasks", "max_seconds", "max_cost")
    MAX_TASKS_FIELD_NUMBER: _ClassVar[int]
    MAX_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_COST_FIELD_NUMBER: _ClassVar[int]
    max_tasks: int
    max_seconds: int
    max_cost: float
    def __init__(self, max_tasks: _Optional[int] = ..., max_seconds: _Optional[int] = ..., max_cost: _Optional[float] = ...) -> None: ...

class StartExecutionResponse(_message.Message):
    __slots__ = ("execution_id", "workflow_id", "status", "started_at")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    workflow_id: str
    status: ExecutionStatus.Value
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, execution_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., status: _Optional[_Union[ExecutionStatus.Value, str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StartExecutionsRequest(_message.Message):
    __slots__ = ("executions",)
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[StartExecutionRequest]
    def __init__(self, executions: _Optional[_Iterable[_Union[StartExecutionRequest, _Mapping]]] = ...) -> None: ...

class StartExecutionsResponse(_message.Message):
    __slots__ = ("executions",)
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[StartExecutionResponse]
    def __init__(self, executions: _Optional[_Iterable[_Union[StartExecutionResponse, _Mapping]]] = ...) -> None: ...

class GetExecutionRequest(_message.Message):
    __slots__ = ("execution_id", "wait", "status_not")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    STATUS_NOT_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    wait: str
    status_not: ExecutionStatus.Value
    def __init__(self, execution_id: _Optional[str] = ..., wait: _Optional[str] = ..., status_not: _Optional[_Union[ExecutionStatus.Value, str]] = ...) -> None: ...

class GetExecutionResponse(_message.Message):
    __slots__ = ("execution",)
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    execution: Execution
    def __init__(self, execution: _Optional[_Union[Execution, _Mapping]] = ...) -> None: ...

class WatchExecutionRequest(_message.Message):
    __slots__ = ("execution_id",)
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    def __init__(self, execution_id: _Optional[str] = ...) -> None: ...

class WatchExecutionResponse(_message.Message):
    __slots__ = ("execution", "tasks", "initial")
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    INITIAL_FIELD_NUMBER: _ClassVar[int]
    execution: Execution
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    initial: bool
    def __init__(self, execution: _Optional[_Union[Execution, _Mapping]] = ..., tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., initial: _Optional[bool] = ...) -> None: ...

class ListExecutionsRequest(_message.Message):
    __slots__ = ("workflow_id", "status", "limit", "offset")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    status: ExecutionStatus.Value
    limit: int
    offset: int
    def __init__(self, workflow_id: _Optional[str] = ..., status: _Optional[_Union[ExecutionStatus.Value, str]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ListExecutionsResponse(_message.Message):
    __slots__ = ("executions",)
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[Execution]
    def __init__(self, executions: _Optional[_Iterable[_Union[Execution, _Mapping]]] = ...) -> None: ...

class CancelExecutionRequest(_message.Message):
    __slots__ = ("execution_id",)
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    def __init__(self, execution_id: _Optional[str] = ...) -> None: ...

class CancelExecutionResponse(_message.Message):
    __slots__ = ("execution",)
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    execution: Execution
    def __init__(self, execution: _Optional[_Union[Execution, _Mapping]] = ...) -> None: ...

class ListExecutionTasksRequest(_message.Message):
    __slots__ = ("execution_id",)
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    def __init__(self, execution_id: _Optional[str] = ...) -> None: ...

class ListExecutionTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class GetTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: Task
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...

class WorkRequest(_message.Message):
    __slots__ = ("agent_id", "capabilities", "slots", "batched", "completions", "failures", "renewals")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    BATCHED_FIELD_NUMBER: _ClassVar[int]
    COMPLETIONS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    RENEWALS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    slots: int
    batched: bool
    completions: _containers.RepeatedCompositeFieldContainer[CompleteTaskRequest]
    failures: _containers.RepeatedCompositeFieldContainer[FailTaskRequest]
    renewals: _containers.RepeatedCompositeFieldContainer[RenewLeaseRequest]
    def __init__(self, agent_id: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., slots: _Optional[int] = ..., batched: _Optional[bool] = ..., completions: _Optional[_Iterable[_Union[CompleteTaskRequest, _Mapping]]] = ..., failures: _Optional[_Iterable[_Union[FailTaskRequest, _Mapping]]] = ..., renewals: _Optional[_Iterable[_Union[RenewLeaseRequest, _Mapping]]] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("task_id", "execution_id", "step_id", "capability", "input", "fencing_token", "lease_expires_at", "lease_seconds", "timeout_seconds", "attempt", "traceparent", "capability_query")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_QUERY_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    execution_id: str
    step_id: str
    capability: str
    input: _struct_pb2.Struct
    fencing_token: int
    lease_expires_at: _timestamp_pb2.Timestamp
    lease_seconds: int
    timeout_seconds: int
    attempt: int
    traceparent: str
    capability_query: str
    def __init__(self, task_id: _Optional[str] = ..., execution_id: _Optional[str] = ..., step_id: _Optional[str] = ..., capability: _Optional[str] = ..., input: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., fencing_token: _Optional[int] = ..., lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lease_seconds: _Optional[int] = ..., timeout_seconds: _Optional[int] = ..., attempt: _Optional[int] = ..., traceparent: _Optional[str] = ..., capability_query: _Optional[str] = ...) -> None: ...

class Cancellation(_message.Message):
    __slots__ = ("task_id", "fencing_token", "reason")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    fencing_token: int
    reason: str
    def __init__(self, task_id: _Optional[str] = ..., fencing_token: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("task_id", "fencing_token", "kind", "code", "error", "lease_expires_at", "will_retry", "execution_status")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    WILL_RETRY_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_STATUS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    fencing_token: int
    kind: ReceiptKind
    code: int
    error: str
    lease_expires_at: _timestamp_pb2.Timestamp
    will_retry: bool
    execution_status: ExecutionStatus.Value
    def __init__(self, task_id: _Optional[str] = ..., fencing_token: _Optional[int] = ..., kind: _Optional[_Union[ReceiptKind, str]] = ..., code: _Optional[int] = ..., error: _Optional[str] = ..., lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., will_retry: _Optional[bool] = ..., execution_status: _Optional[_Union[ExecutionStatus.Value, str]] = ...) -> None: ...

class WorkBatch(_message.Message):
    __slots__ = ("assignments", "cancellations", "receipts")
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    CANCELLATIONS_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    assignments: _containers.RepeatedCompositeFieldContainer[Assignment]
    cancellations: _containers.RepeatedCompositeFieldContainer[Cancellation]
    receipts: _containers.RepeatedCompositeFieldContainer[Receipt]
    def __init__(self, assignments: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ..., cancellations: _Optional[_Iterable[_Union[Cancellation, _Mapping]]] = ..., receipts: _Optional[_Iterable[_Union[Receipt, _Mapping]]] = ...) -> None: ...

class WorkResponse(_message.Message):
    __slots__ = ("assignment", "cancellation", "batch")
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    CANCELLATION_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    assignment: Assignment
    cancellation: Cancellation
    batch: WorkBatch
    def __init__(self, assignment: _Optional[_Union[Assignment, _Mapping]] = ..., cancellation: _Optional[_Union[Cancellation, _Mapping]] = ..., batch: _Optional[_Union[WorkBatch, _Mapping]] = ...) -> None: ...

class RenewLeaseRequest(_message.Message):
    __slots__ = ("task_id", "fencing_token")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    fencing_token: int
    def __init__(self, task_id: _Optional[str] = ..., fencing_token: _Optional[int] = ...) -> None: ...

class RenewLeaseResponse(_message.Message):
    __slots__ = ("lease_expires_at",)
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    lease_expires_at: _timestamp_pb2.Timestamp
    def __init__(self, lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CompleteTaskRequest(_message.Message):
    __slots__ = ("task_id", "fencing_token", "output", "traceparent", "cost")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    fencing_token: int
    output: _struct_pb2.Struct
    traceparent: str
    cost: float
    def __init__(self, task_id: _Optional[str] = ..., fencing_token: _Optional[int] = ..., output: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., traceparent: _Optional[str] = ..., cost: _Optional[float] = ...) -> None: ...

class CompleteTaskResponse(_message.Message):
    __slots__ = ("execution_status",)
    EXECUTION_STATUS_FIELD_NUMBER: _ClassVar[int]
    execution_status: ExecutionStatus.Value
    def __init__(self, execution_status: _Optional[_Union[ExecutionStatus.Value, str]] = ...) -> None: ...

class FailTaskRequest(_message.Message):
    __slots__ = ("task_id", "fencing_token", "error", "retryable", "traceparent")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    fencing_token: int
    error: str
    retryable: bool
    traceparent: str
    def __init__(self, task_id: _Optional[str] = ..., fencing_token: _Optional[int] = ..., error: _Optional[str] = ..., retryable: _Optional[bool] = ..., traceparent: _Optional[str] = ...) -> None: ...

class FailTaskResponse(_message.Message):
    __slots__ = ("will_retry",)
    WILL_RETRY_FIELD_NUMBER: _ClassVar[int]
    will_retry: bool
    def __init__(self, will_retry: _Optional[bool] = ...) -> None: ...

class ApproveTaskRequest(_message.Message):
    __slots__ = ("task_id", "reason")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    reason: str
    def __init__(self, task_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ApproveTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: Task
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...

class RejectTaskRequest(_message.Message):
    __slots__ = ("task_id", "reason")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    reason: str
    def __init__(self, task_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RejectTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: Task
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...
