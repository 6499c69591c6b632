import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ossa.orchestrator.v1 import orchestrator_pb2 as _orchestrator_pb2
from ossa.registry.v1 import registry_pb2 as _registry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchAgentsRequest(_message.Message):
    __slots__ = ("query", "type", "status", "limit")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    query: str
    type: _registry_pb2.AgentType.Value
    status: _registry_pb2.AgentStatus.Value
    limit: int
    def __init__(self, query: _Optional[str] = ..., type: _Optional[_Union[_registry_pb2.AgentType.Value, str]] = ..., status: _Optional[_Union[_registry_pb2.AgentStatus.Value, str]] = ..., limit: _Optional[int] = ...) -> None: ...

class AgentMatch(_message.Message):
    __slots__ = ("agent", "score")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    agent: _registry_pb2.Agent
    score: float
    def __init__(self, agent: _Optional[_Union[_registry_pb2.Agent, _Mapping]] = ..., score: _Optional[float] = ...) -> None: ...

class SearchAgentsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[AgentMatch]
    def __init__(self, results: _Optional[_Iterable[_Union[AgentMatch, _Mapping]]] = ...) -> None: ...

class SearchWorkflowsRequest(_message.Message):
    __slots__ = ("query", "status", "tags", "limit")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    query: str
    status: _orchestrator_pb2.WorkflowStatus.Value
    tags: _containers.RepeatedScalarFieldContainer[str]
    limit: int
    def __init__(self, query: _Optional[str] = ..., status: _Optional[_Union[_orchestrator_pb2.WorkflowStatus.Value, str]] = ..., tags: _Optional[_Iterable[str]] = ..., limit: _Optional[int] = ...) -> None: ...

class WorkflowMatch(_message.Message):
    __slots__ = ("workflow", "score")
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    workflow: _orchestrator_pb2.Workflow
    score: float
    def __init__(self, workflow: _Optional[_Union[_orchestrator_pb2.Workflow, _Mapping]] = ..., score: _Optional[float] = ...) -> None: ...

class SearchWorkflowsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[WorkflowMatch]
    def __init__(self, results: _Optional[_Iterable[_Union[WorkflowMatch, _Mapping]]] = ...) -> None: ...

class AddKnowledgeRequest(_message.Message):
    __slots__ = ("content", "source", "metadata", "timestamp")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    content: str
    source: str
    metadata: _struct_pb2.Struct
    timestamp: _timestamp_pb2.Timestamp
    def __init__(self, content: _Optional[str] = ..., source: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AddKnowledgeResponse(_message.Message):
    __slots__ = ("document_id", "chunk_count", "indexed")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    chunk_count: int
    indexed: bool
    def __init__(self, document_id: _Optional[str] = ..., chunk_count: _Optional[int] = ..., indexed: _Optional[bool] = ...) -> None: ...

class KnowledgeChunk(_message.Message):
    __slots__ = ("id", "document_id", "chunk_index", "content", "source", "metadata", "timestamp")
    ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    id: str
    document_id: str
    chunk_index: int
    content: str
    source: str
    metadata: _struct_pb2.Struct
    timestamp: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., document_id: _Optional[str] = ..., chunk_index: _Optional[int] = ..., content: _Optional[str] = ..., source: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class KnowledgeMatch(_message.Message):
    __slots__ = ("chunk", "score")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    chunk: KnowledgeChunk
    score: float
    def __init__(self, chunk: _Optional[_Union[KnowledgeChunk, _Mapping]] = ..., score: _Optional[float] = ...) -> None: ...

class SearchKnowledgeRequest(_message.Message):
    __slots__ = ("query", "source", "to", "limit")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    query: str
    source: str
    to: _timestamp_pb2.Timestamp
    limit: int
    def __init__(self, query: _Optional[str] = ..., source: _Optional[str] = ..., to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ..., **kwargs) -> None: ...

class SearchKnowledgeResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[KnowledgeMatch]
    def __init__(self, results: _Optional[_Iterable[_Union[KnowledgeMatch, _Mapping]]] = ...) -> None: ...

class DeleteKnowledgeRequest(_message.Message):
    __slots__ = ("document_id",)
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    def __init__(self, document_id: _Optional[str] = ...) -> None: ...

class DeleteKnowledgeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReindexRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReindexResponse(_message.Message):
    __slots__ = ("agents", "workflows", "knowledge_chunks")
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    KNOWLEDGE_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    agents: int
    workflows: int
    knowledge_chunks: int
    def __init__(self, agents: _Optional[int] = ..., workflows: _Optional[int] = ..., knowledge_chunks: _Optional[int] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SnapshotResponse(_message.Message):
    __slots__ = ("directory", "points")
    class PointsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    directory: str
    points: _containers.ScalarMap[str, int]
    def __init__(self, directory: _Optional[str] = ..., points: _Optional[_Mapping[str, int]] = ...) -> None: ...
