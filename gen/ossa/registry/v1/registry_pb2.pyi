import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ossa.registry.v1 import card_pb2 as _card_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentType(_message.Message):
    __slots__ = ()
    class Value(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        type_unspecified: _ClassVar[AgentType.Value]
        orchestrator: _ClassVar[AgentType.Value]
        worker: _ClassVar[AgentType.Value]
        critic: _ClassVar[AgentType.Value]
        judge: _ClassVar[AgentType.Value]
        trainer: _ClassVar[AgentType.Value]
        governor: _ClassVar[AgentType.Value]
        monitor: _ClassVar[AgentType.Value]
        integrator: _ClassVar[AgentType.Value]
    type_unspecified: AgentType.Value
    orchestrator: AgentType.Value
    worker: AgentType.Value
    critic: AgentType.Value
    judge: AgentType.Value
    trainer: AgentType.Value
    governor: AgentType.Value
    monitor: AgentType.Value
    integrator: AgentType.Value
    def __init__(self) -> None: ...

class AgentStatus(_message.Message):
    __slots__ = ()
    class Value(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        status_unspecified: _ClassVar[AgentStatus.Value]
        idle: _ClassVar[AgentStatus.Value]
        busy: _ClassVar[AgentStatus.Value]
        error: _ClassVar[AgentStatus.Value]
        offline: _ClassVar[AgentStatus.Value]
    status_unspecified: AgentStatus.Value
    idle: AgentStatus.Value
    busy: AgentStatus.Value
    error: AgentStatus.Value
    offline: AgentStatus.Value
    def __init__(self) -> None: ...

class Agent(_message.Message):
    __slots__ = ("id", "name", "type", "version", "status", "capabilities", "config", "metadata", "created_at", "updated_at", "last_heartbeat")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    type: AgentType.Value
    version: str
    status: AgentStatus.Value
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    config: _struct_pb2.Struct
    metadata: _struct_pb2.Struct
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    last_heartbeat: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[_Union[AgentType.Value, str]] = ..., version: _Optional[str] = ..., status: _Optional[_Union[AgentStatus.Value, str]] = ..., capabilities: _Optional[_Iterable[str]] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_heartbeat: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateAgentRequest(_message.Message):
    __slots__ = ("name", "type", "version", "capabilities", "config", "metadata")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: AgentType.Value
    version: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    config: _struct_pb2.Struct
    metadata: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[AgentType.Value, str]] = ..., version: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class CreateAgentResponse(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: Agent
    def __init__(self, agent: _Optional[_Union[Agent, _Mapping]] = ...) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ("type", "status", "limit", "offset", "name")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    type: AgentType.Value
    status: AgentStatus.Value
    limit: int
    offset: int
    name: str
    def __init__(self, type: _Optional[_Union[AgentType.Value, str]] = ..., status: _Optional[_Union[AgentStatus.Value, str]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents",)
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[Agent]
    def __init__(self, agents: _Optional[_Iterable[_Union[Agent, _Mapping]]] = ...) -> None: ...

class GetAgentRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class GetAgentResponse(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: Agent
    def __init__(self, agent: _Optional[_Union[Agent, _Mapping]] = ...) -> None: ...

class GetAgentCardRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class GetAgentCardResponse(_message.Message):
    __slots__ = ("card",)
    CARD_FIELD_NUMBER: _ClassVar[int]
    card: _card_pb2.AgentCard
    def __init__(self, card: _Optional[_Union[_card_pb2.AgentCard, _Mapping]] = ...) -> None: ...

class DeleteAgentRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class DeleteAgentResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("agent_id", "status", "load")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    status: AgentStatus.Value
    load: float
    def __init__(self, agent_id: _Optional[str] = ..., status: _Optional[_Union[AgentStatus.Value, str]] = ..., load: _Optional[float] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("agent_id", "received_at", "interval_seconds", "ttl_seconds")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    received_at: _timestamp_pb2.Timestamp
    interval_seconds: int
    ttl_seconds: int
    def __init__(self, agent_id: _Optional[str] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., interval_seconds: _Optional[int] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...
