"""What Envoy's config is computed from: the proto descriptor set (its services and methods) and the
generated OpenAPI document, both package data of `ossa` (scripts/gen_protos.py writes them).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.resources import files

from google.api import annotations_pb2  # type: ignore[import-untyped]
from google.protobuf import descriptor_pb2

DESCRIPTOR_NAME = "ossa.binpb"
OPENAPI_NAME = "openapi.json"
# Upstream clusters by the second component of a proto package (ossa.<cluster>.v1).
CLUSTERS = ("registry", "gateway", "orchestrator", "monitoring", "search")
# Packages served by another component's process: ossa.auth.v1 (sessions, API keys) by the gateway.
CLUSTER_OF_PACKAGE = {"auth": "gateway"}


@dataclass(frozen=True)
class GrpcMethod:
    service: str  # full name, e.g. ossa.registry.v1.AgentRegistryService
    name: str
    client_streaming: bool
    server_streaming: bool
    response_body: str = ""  # the google.api.http rule's response_body, if any
    # The reply message has exactly that one (top-level) field: the JSON reply is {"<field>": X}.
    response_body_sole: bool = False

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.name}"

    @property
    def streaming(self) -> bool:
        return self.client_streaming or self.server_streaming

    @property
    def cluster(self) -> str | None:
        parts = self.service.split(".")
        name = CLUSTER_OF_PACKAGE.get(parts[1], parts[1]) if len(parts) > 2 else ""
        return name if name in CLUSTERS else None


def descriptor_bytes() -> bytes:
    """The FileDescriptorSet built by scripts/gen_protos.py (package data of `ossa`)."""
    return files("ossa").joinpath(DESCRIPTOR_NAME).read_bytes()


def openapi_bytes() -> bytes:
    """The generated OpenAPI document (package data of `ossa`)."""
    return files("ossa").joinpath(OPENAPI_NAME).read_bytes()


def _descriptor_set(descriptor: bytes) -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString(descriptor)


def grpc_methods(descriptor: bytes) -> list[GrpcMethod]:
    """Every method of every service in an `ossa.*` package, sorted by path."""
    fds = _descriptor_set(descriptor)
    messages = dict(_messages(fds))
    methods = []
    for file in fds.file:
        if not file.package.startswith("ossa."):
            continue
        for service in file.service:
            full = f"{file.package}.{service.name}"
            for m in service.method:
                body = m.options.Extensions[annotations_pb2.http].response_body
                reply = messages.get(m.output_type)
                sole = bool(body) and reply is not None and [f.name for f in reply.field] == [body]
                methods.append(GrpcMethod(full, m.name, m.client_streaming, m.server_streaming, body, sole))
    return sorted(methods, key=lambda m: m.path)


def envoy_descriptor(descriptor: bytes) -> bytes:
    """The descriptor set as Envoy's transcoder can load it.

    Envoy refuses a google.api.http `response_body` naming anything but a google.api.HttpBody
    field ("not supported yet for non-HttpBody fields"), so those are removed here; the Lua filter
    unwraps the field instead (see envoy/status.lua and `_method_routes`).
    """
    fds = _descriptor_set(descriptor)
    messages = dict(_messages(fds))
    for file in fds.file:
        for service in file.service:
            for method in service.method:
                if not method.options.HasExtension(annotations_pb2.http):
                    continue
                rule = method.options.Extensions[annotations_pb2.http]
                for binding in (rule, *rule.additional_bindings):
                    if binding.response_body and not _is_http_body(
                        messages.get(method.output_type), binding.response_body
                    ):
                        binding.ClearField("response_body")
    return fds.SerializeToString(deterministic=True)


def _messages(fds: descriptor_pb2.FileDescriptorSet) -> Iterator[tuple[str, descriptor_pb2.DescriptorProto]]:
    """(".package.Outer.Inner", message) for every message, nested ones included."""

    def walk(
        prefix: str, messages: Iterable[descriptor_pb2.DescriptorProto]
    ) -> Iterator[tuple[str, descriptor_pb2.DescriptorProto]]:
        for message in messages:
            name = f"{prefix}.{message.name}"
            yield name, message
            yield from walk(name, message.nested_type)

    for file in fds.file:
        yield from walk(f".{file.package}" if file.package else "", file.message_type)


def _is_http_body(message: descriptor_pb2.DescriptorProto | None, field_name: str) -> bool:
    if message is None:
        return False
    return any(f.name == field_name and f.type_name == ".google.api.HttpBody" for f in message.field)


def ossa_services(descriptor: bytes) -> list[str]:
    """Full names of every service in an `ossa.*` package of the descriptor, sorted."""
    names: set[str] = set()
    for file in _descriptor_set(descriptor).file:
        if file.package.startswith("ossa."):
            names.update(f"{file.package}.{service.name}" for service in file.service)
    return sorted(names)
