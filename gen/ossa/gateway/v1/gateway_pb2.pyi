import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ossa.registry.v1 import card_pb2 as _card_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HealthState(_message.Message):
    __slots__ = ()
    class Value(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        state_unspecified: _ClassVar[HealthState.Value]
        healthy: _ClassVar[HealthState.Value]
        unhealthy: _ClassVar[HealthState.Value]
        disabled: _ClassVar[HealthState.Value]
    state_unspecified: HealthState.Value
    healthy: HealthState.Value
    unhealthy: HealthState.Value
    disabled: HealthState.Value
    def __init__(self) -> None: ...

class ComponentHealth(_message.Message):
    __slots__ = ("name", "kind", "state", "target", "latency_ms", "message", "checked_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    state: HealthState.Value
    target: str
    latency_ms: float
    message: str
    checked_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., state: _Optional[_Union[HealthState.Value, str]] = ..., target: _Optional[str] = ..., latency_ms: _Optional[float] = ..., message: _Optional[str] = ..., checked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetHealthResponse(_message.Message):
    __slots__ = ("status", "version", "components", "checked_at")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    status: HealthState.Value
    version: str
    components: _containers.RepeatedCompositeFieldContainer[ComponentHealth]
    checked_at: _timestamp_pb2.Timestamp
    def __init__(self, status: _Optional[_Union[HealthState.Value, str]] = ..., version: _Optional[str] = ..., components: _Optional[_Iterable[_Union[ComponentHealth, _Mapping]]] = ..., checked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetPlatformCardRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPlatformCardResponse(_message.Message):
    __slots__ = ("card",)
    CARD_FIELD_NUMBER: _ClassVar[int]
    card: _card_pb2.AgentCard
    def __init__(self, card: _Optional[_Union[_card_pb2.AgentCard, _Mapping]] = ...) -> None: ...
