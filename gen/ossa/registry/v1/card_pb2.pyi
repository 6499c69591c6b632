from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentCard(_message.Message):
    __slots__ = ("protocolVersion", "name", "description", "url", "version", "provider", "capabilities", "defaultInputModes", "defaultOutputModes", "skills", "documentationUrl", "securitySchemes")
    class SecuritySchemesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: SecurityScheme
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[SecurityScheme, _Mapping]] = ...) -> None: ...
    PROTOCOLVERSION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    DEFAULTINPUTMODES_FIELD_NUMBER: _ClassVar[int]
    DEFAULTOUTPUTMODES_FIELD_NUMBER: _ClassVar[int]
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTATIONURL_FIELD_NUMBER: _ClassVar[int]
    SECURITYSCHEMES_FIELD_NUMBER: _ClassVar[int]
    protocolVersion: str
    name: str
    description: str
    url: str
    version: str
    provider: AgentProvider
    capabilities: AgentCapabilities
    defaultInputModes: _containers.RepeatedScalarFieldContainer[str]
    defaultOutputModes: _containers.RepeatedScalarFieldContainer[str]
    skills: _containers.RepeatedCompositeFieldContainer[AgentSkill]
    documentationUrl: str
    securitySchemes: _containers.MessageMap[str, SecurityScheme]
    def __init__(self, protocolVersion: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., url: _Optional[str] = ..., version: _Optional[str] = ..., provider: _Optional[_Union[AgentProvider, _Mapping]] = ..., capabilities: _Optional[_Union[AgentCapabilities, _Mapping]] = ..., defaultInputModes: _Optional[_Iterable[str]] = ..., defaultOutputModes: _Optional[_Iterable[str]] = ..., skills: _Optional[_Iterable[_Union[AgentSkill, _Mapping]]] = ..., documentationUrl: _Optional[str] = ..., securitySchemes: _Optional[_Mapping[str, SecurityScheme]] = ...) -> None: ...

class AgentProvider(_message.Message):
    __slots__ = ("organization", "url")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    organization: str
    url: str
    def __init__(self, organization: _Optional[str] = ..., url: _Optional[str] = ...) -> None: ...

class AgentCapabilities(_message.Message):
    __slots__ = ("streaming", "pushNotifications", "stateTransitionHistory")
    STREAMING_FIELD_NUMBER: _ClassVar[int]
    PUSHNOTIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    STATETRANSITIONHISTORY_FIELD_NUMBER: _ClassVar[int]
    streaming: bool
    pushNotifications: bool
    stateTransitionHistory: bool
    def __init__(self, streaming: _Optional[bool] = ..., pushNotifications: _Optional[bool] = ..., stateTransitionHistory: _Optional[bool] = ...) -> None: ...

class AgentSkill(_message.Message):
    __slots__ = ("id", "name", "description", "tags", "examples", "inputModes", "outputModes")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    INPUTMODES_FIELD_NUMBER: _ClassVar[int]
    OUTPUTMODES_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    examples: _containers.RepeatedScalarFieldContainer[str]
    inputModes: _containers.RepeatedScalarFieldContainer[str]
    outputModes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., examples: _Optional[_Iterable[str]] = ..., inputModes: _Optional[_Iterable[str]] = ..., outputModes: _Optional[_Iterable[str]] = ...) -> None: ...

class SecurityScheme(_message.Message):
    __slots__ = ("type", "scheme", "bearerFormat", "description")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    BEARERFORMAT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    type: str
    scheme: str
    bearerFormat: str
    description: str
    def __init__(self, type: _Optional[str] = ..., scheme: _Optional[str] = ..., bearerFormat: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...
