"""The OpenAPI 3.1 document of the REST API, generated from the proto descriptor set alone.

Every rpc with a `google.api.http` rule becomes an operation: the rule gives the path, verb, body
and response body; proto comments (source_code_info) give summaries and descriptions; message
fields become JSON Schemas following the proto3 JSON mapping as Envoy's transcoder prints it
(snake_case names, enums as value names, int64 as strings, Timestamp as RFC 3339 strings).
What the descriptor cannot say is kept in the small tables below: success status codes other
than 200, and required fields.

`write_openapi()` is called by scripts/gen_protos.py to write gen/ossa/openapi.json, which
Envoy serves at GET /api/v1/openapi.json.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from google.api import annotations_pb2, http_pb2  # type: ignore[import-untyped]
from google.protobuf import descriptor_pb2

from gateway_http.openapi_tables import (
    ALSO_SUCCESS,
    ERROR_HEADERS,
    ERROR_RESPONSES,
    ERROR_SCHEMA,
    EXTRA_ERRORS,
    NOT_RATE_LIMITED,
    REQUIRED,
    SCALARS,
    WELL_KNOWN,
    success_status,
)

FDP = descriptor_pb2.FieldDescriptorProto
Schema = dict[str, Any]

TITLE = "OSSA Platform API"
VERSION = "0.1.9"  # the platform version (pyproject.toml); a unit test keeps them equal
DESCRIPTION = "Open Standards for Scalable Agents"
# Paths already start with /api/v1, so the server URL stops at the port.
SERVERS = [{"url": "http://localhost:3100", "description": "Local gateway (ossa up)"}]

_VERBS = ("get", "put", "post", "delete", "patch")
_PATH_VARIABLE = re.compile(r"\{([^}=]+)(?:=[^}]*)?\}")
# source_code_info path tags (descriptor.proto field numbers)
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM = 2, 3, 4
_SERVICE_METHOD = 2


class _Descriptors:
    """Messages, enums and comments of a FileDescriptorSet, by fully qualified name."""

    def __init__(self, fds: descriptor_pb2.FileDescriptorSet) -> None:
        self.files = list(fds.file)
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self.comments: dict[str, str] = {}  # ".pkg.Msg", ".pkg.Msg.field", ".pkg.Svc.Method" -> text
        for file in self.files:
            loc = {tuple(x.path): _clean_comment(x.leading_comments) for x in file.source_code_info.location}
            prefix = f".{file.package}" if file.package else ""
            for i, message in enumerate(file.message_type):
                self._add_message(prefix, message, (_FILE_MESSAGE, i), loc)
            for i, enum in enumerate(file.enum_type):
                self._add_enum(prefix, enum, (_FILE_ENUM, i), loc)
            for i, service in enumerate(file.service):
                name = f"{prefix}.{service.name}"
                self.comments[name] = loc.get((_FILE_SERVICE, i), "")
                for j, method in enumerate(service.method):
                    self.comments[f"{name}.{method.name}"] = loc.get((_FILE_SERVICE, i, _SERVICE_METHOD, j), "")

    def _add_message(
        self,
        prefix: str,
        message: descriptor_pb2.DescriptorProto,
        path: tuple[int, ...],
        loc: dict[tuple[int, ...], str],
    ) -> None:
        name = f"{prefix}.{message.name}"
        self.messages[name] = message
        self.comments[name] = loc.get(path, "")
        for i, field in enumerate(message.field):
            self.comments[f"{name}.{field.name}"] = loc.get((*path, _MESSAGE_FIELD, i), "")
        for i, nested in enumerate(message.nested_type):
            self._add_message(name, nested, (*path, _MESSAGE_NESTED, i), loc)
        for i, enum in enumerate(message.enum_type):
            self._add_enum(name, enum, (*path, _MESSAGE_ENUM, i), loc)

    def _add_enum(
        self,
        prefix: str,
        enum: descriptor_pb2.EnumDescriptorProto,
        path: tuple[int, ...],
        loc: dict[tuple[int, ...], str],
    ) -> None:
        name = f"{prefix}.{enum.name}"
        self.enums[name] = enum
        self.comments[name] = loc.get(path, "")

    def services(self) -> Iterator[tuple[str, descriptor_pb2.ServiceDescriptorProto]]:
        for file in self.files:
            if file.package.startswith("ossa."):
                for service in file.service:
                    yield f"{file.package}.{service.name}", service


def _clean_comment(text: str) -> str:
    """Proto comment -> Markdown: drop lint directives, unwrap lines, keep paragraphs."""
    paragraphs: list[list[str]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("buf:lint:"):
            continue
        if line:
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    return "\n\n".join(" ".join(p) for p in paragraphs if p)


def _summary(comment: str) -> str:
    first = comment.split("\n\n", 1)[0]
    match = re.match(r"(.+?\.)(\s|$)", first)
    return match.group(1) if match else first


class _Builder:
    def __init__(self, descriptors: _Descriptors) -> None:
        self.d = descriptors
        self.schemas: dict[str, Schema] = {}
        self.pending: list[str] = []
        self.names: dict[str, str] = self._component_names()

    def _component_names(self) -> dict[str, str]:
        """Short names (Agent), unless two messages share one (then dotted full names)."""
        short: dict[str, list[str]] = {}
        for full in self.d.messages:
            short.setdefault(full.rsplit(".", 1)[-1], []).append(full)
        names = {}
        for name, fulls in short.items():
            for full in fulls:
                names[full] = name if len(fulls) == 1 else full.lstrip(".").replace(".", "_")
        return names

    # Schemas -----------------------------------------------------------------------------------

    def ref(self, message: str) -> Schema:
        if message in WELL_KNOWN:
            return dict(WELL_KNOWN[message])
        name = self.names[message]
        if name not in self.schemas and message not in self.pending:
            self.pending.append(message)
        return {"$ref": f"#/components/schemas/{name}"}

    def flush(self) -> None:
        while self.pending:
            message = self.pending.pop(0)
            self.schemas[self.names[message]] = self.message_schema(message)

    def message_schema(self, message: str, *, exclude: frozenset[str] = frozenset()) -> Schema:
        proto = self.d.messages[message]
        properties = {
            field.name: self.field_schema(message, field) for field in proto.field if field.name not in exclude
        }
        schema: Schema = {"type": "object", "properties": properties}
        if self.d.comments.get(message):
            schema["description"] = self.d.comments[message]
        required = [name for name in REQUIRED.get(message.lstrip("."), []) if name in properties]
        if required:
            schema["required"] = required
        return schema

    def field_schema(self, message: str, field: descriptor_pb2.FieldDescriptorProto, *, doc: bool = True) -> Schema:
        if field.type == FDP.TYPE_MESSAGE and self.d.messages[field.type_name].options.map_entry:
            entry = self.d.messages[field.type_name]
            schema: Schema = {"type": "object", "additionalProperties": self.value_schema(entry.field[1])}
        elif field.label == FDP.LABEL_REPEATED:
            schema = {"type": "array", "items": self.value_schema(field)}
        else:
            schema = self.value_schema(field)
        comment = self.d.comments.get(f"{message}.{field.name}", "")
        if doc and comment:
            schema["description"] = comment
        return schema

    def value_schema(self, field: descriptor_pb2.FieldDescriptorProto) -> Schema:
        if field.type in (FDP.TYPE_MESSAGE, FDP.TYPE_GROUP):
            return self.ref(field.type_name)
        if field.type == FDP.TYPE_ENUM:
            return self.enum_schema(field.type_name)
        schema = dict(SCALARS[field.type])
        if field.type == FDP.TYPE_STRING and (field.name == "id" or field.name.endswith("_id")):
            schema["format"] = "uuid"
        return schema

    def enum_schema(self, enum: str) -> Schema:
        values = [
            v.name for v in self.d.enums[enum].value if not (v.number == 0 and v.name.lower().endswith("unspecified"))
        ]
        return {"type": "string", "enum": values}

    def lookup(self, message: str, path: str) -> tuple[str, descriptor_pb2.FieldDescriptorProto]:
        """The field at dotted `path` in `message`, and the message that declares it."""
        *parents, last = path.split(".")
        for part in parents:
            message = self._field(message, part).type_name
        return message, self._field(message, last)

    def _field(self, message: str, name: str) -> descriptor_pb2.FieldDescriptorProto:
        for field in self.d.messages[message].field:
            if field.name == name:
                return field
        raise ValueError(f"{message.lstrip('.')} has no field {name!r}")

    # Operations --------------------------------------------------------------------------------

    def query_parameters(self, message: str, skip: set[str], prefix: str = "", depth: int = 0) -> list[Schema]:
        params = []
        for field in self.d.messages[message].field:
            name = prefix + field.name
            if name in skip:
                continue
            if field.type == FDP.TYPE_MESSAGE and field.type_name not in WELL_KNOWN:
                nested = self.d.messages[field.type_name]
                if field.label != FDP.LABEL_REPEATED and not nested.options.map_entry and depth < 3:
                    params += self.query_parameters(field.type_name, skip, name + ".", depth + 1)
                continue
            if field.type_name in (".google.protobuf.Struct", ".google.protobuf.Value", ".google.protobuf.ListValue"):
                continue
            param: Schema = {
                "name": name,
                "in": "query",
                "required": False,
                "schema": self.field_schema(message, field, doc=False),
            }
            comment = self.d.comments.get(f"{message}.{field.name}", "")
            if comment:
                param["description"] = comment
            if field.label == FDP.LABEL_REPEATED:
                param.update(style="form", explode=True)
            params.append(param)
        return params

    def operation(
        self, service: str, method: descriptor_pb2.MethodDescriptorProto, rule: http_pb2.HttpRule, operation_id: str
    ) -> tuple[str, str, Schema]:
        verb = rule.WhichOneof("pattern")
        if verb not in _VERBS:
            raise ValueError(f"{service}.{method.name}: unsupported google.api.http pattern {verb!r}")
        template: str = getattr(rule, verb)
        path_fields = _PATH_VARIABLE.findall(template)
        path = _PATH_VARIABLE.sub(lambda m: "{" + m.group(1) + "}", template)
        full = f"{service}.{method.name}"
        request, response = method.input_type, method.output_type
        comment = self.d.comments.get(f".{full}", "")

        op: Schema = {
            "operationId": operation_id,
            "tags": [service.rsplit(".", 1)[-1]],
            "x-grpc-method": f"/{service}/{method.name}",
        }
        if comment:
            op["summary"] = _summary(comment)
            if op["summary"] != comment:
                op["description"] = comment

        params = []
        for name in path_fields:
            owner, field = self.lookup(request, name)
            param: Schema = {
                "name": name,
                "in": "path",
                "required": True,
                "schema": self.field_schema(owner, field, doc=False),
            }
            if self.d.comments.get(f"{owner}.{field.name}"):
                param["description"] = self.d.comments[f"{owner}.{field.name}"]
            params.append(param)
        if rule.body != "*":
            skip = set(path_fields) | ({rule.body} if rule.body else set())
            params += self.query_parameters(request, skip)
        if params:
            op["parameters"] = params

        if rule.body:
            if rule.body == "*":
                body = (
                    self.message_schema(request, exclude=frozenset(path_fields)) if path_fields else self.ref(request)
                )
            else:
                owner, field = self.lookup(request, rule.body)
                body = self.field_schema(owner, field)
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}

        status = success_status(full)
        reply: Schema = {}
        if status != 204:
            if rule.response_body:
                owner, field = self.lookup(response, rule.response_body)
                reply = self.field_schema(owner, field)
            else:
                reply = self.ref(response)
        responses: Schema = {}
        success: Schema = {"description": _summary(comment) or "Success."}
        if status != 204:
            # Server streaming (WatchExecution): server-sent events, each `data:` one reply message.
            media = "text/event-stream" if method.server_streaming else "application/json"
            success["content"] = {media: {"schema": reply}}
        responses[str(status)] = success
        errors = ["400", "500", "503"]
        if path_fields:
            errors.append("404")
        if status == 201:
            errors.append("409")
        errors += EXTRA_ERRORS.get(full, [])
        if full not in NOT_RATE_LIMITED:
            errors.append("429")
        for code in errors:
            responses[code] = {"$ref": f"#/components/responses/{ERROR_RESPONSES[code][0]}"}
        if full in ALSO_SUCCESS:
            also, description = ALSO_SUCCESS[full]
            schema = {"anyOf": [reply, {"$ref": "#/components/schemas/Error"}]}
            responses[str(also)] = {"description": description, "content": {"application/json": {"schema": schema}}}
        op["responses"] = responses
        return path, verb, op


def _load(descriptor: bytes | str | Path) -> descriptor_pb2.FileDescriptorSet:
    data = descriptor if isinstance(descriptor, bytes) else Path(descriptor).read_bytes()
    return descriptor_pb2.FileDescriptorSet.FromString(data)


def build_openapi(descriptor: bytes | str | Path) -> dict[str, Any]:
    """The OpenAPI 3.1 document for every `google.api.http` rule of the ossa.* services in a
    FileDescriptorSet (bytes, or the path of a .binpb file)."""
    descriptors = _Descriptors(_load(descriptor))
    builder = _Builder(descriptors)
    paths: dict[str, dict[str, Schema]] = {}
    tags = []
    for service, proto in descriptors.services():
        used = False
        for method in proto.method:
            if not method.options.HasExtension(annotations_pb2.http):
                continue  # gRPC only (e.g. streaming Heartbeat)
            rule = method.options.Extensions[annotations_pb2.http]
            base_id = f"{proto.name}_{method.name}"
            for n, binding in enumerate([rule, *rule.additional_bindings]):
                if n and not binding.response_body:
                    binding.response_body = rule.response_body
                path, verb, op = builder.operation(
                    service, method, binding, base_id if n == 0 else f"{base_id}_{n + 1}"
                )
                item = paths.setdefault(path, {})
                if verb in item:
                    raise ValueError(f"{verb.upper()} {path} is bound twice ({item[verb]['operationId']})")
                item[verb] = op
                used = True
        if used:
            tag: Schema = {"name": proto.name}
            if descriptors.comments.get(f".{service}"):
                tag["description"] = descriptors.comments[f".{service}"]
            tags.append(tag)
    builder.flush()
    if "Error" in builder.schemas:
        raise ValueError("a message named Error clashes with the API's error schema")
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": DESCRIPTION},
        "servers": SERVERS,
        "tags": sorted(tags, key=lambda t: t["name"]),
        "paths": paths,
        "components": {
            "schemas": {**builder.schemas, "Error": ERROR_SCHEMA},
            "responses": {
                name: {
                    "description": description,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    **({"headers": ERROR_HEADERS[name]} if name in ERROR_HEADERS else {}),
                }
                for name, description in ERROR_RESPONSES.values()
            },
        },
    }


def render_openapi(descriptor: bytes | str | Path) -> str:
    """The document as written to disk: sorted keys, two-space indent, trailing newline."""
    return json.dumps(build_openapi(descriptor), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_openapi(descriptor_path: Path, out_path: Path) -> None:
    Path(out_path).write_text(render_openapi(descriptor_path), encoding="utf-8")
