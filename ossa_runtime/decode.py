"""Requests protobuf cannot decode become INVALID_ARGUMENT naming the field, instead of UNKNOWN.

grpc.aio answers a call whose request deserializer raises with UNKNOWN ("Unexpected <class
'DecodeError'>"), which Envoy turns into a 500 for REST clients. Protobuf refuses, among others,
a string field that is not UTF-8 and a message nested more than 100 levels deep (about 32 levels
of JSON in a google.protobuf.Struct, which REST clients reach well before Envoy's own JSON limit).

`guard`, innermost in every service's interceptor chain (ossa_runtime.interceptors.Chain),
swaps each handler's deserializer for one that returns an `Undecodable` in place of the request,
and the handler for one that raises its InvalidArgument: after authentication and rate limiting,
like any other bad request. To name the field, the raw bytes are walked with the request's
descriptor (`diagnose`), within a budget.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from ossa_runtime import limits
from ossa_runtime.errors import InvalidArgument

PROTOBUF_MAX_DEPTH = 100  # upb's default recursion limit (messages within messages)
WALK_BUDGET = 200_000  # fields looked at, at most, to explain one undecodable request
_JSON_FILE = "google/protobuf/struct.proto"  # Struct, Value, ListValue: JSON documents


class Undecodable:
    """Stands in for a request that could not be decoded; `error` says why, naming the field."""

    __slots__ = ("error",)

    def __init__(self, error: InvalidArgument) -> None:
        self.error = error


class _Corrupt(Exception):
    pass


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= end or shift > 63:
            raise _Corrupt
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


class _Walk:
    """One look through a message's wire format: the first string that is not UTF-8, the most
    deeply nested field, whether the bytes are corrupt."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.budget = WALK_BUDGET
        self.bad_utf8: str | None = None
        self.corrupt: str | None = None
        self.deepest = (0, "", False)  # depth, path, inside a JSON document

    def message(self, descriptor: Descriptor, start: int, end: int, path: str, depth: int, json: bool) -> None:
        if depth > self.deepest[0]:
            self.deepest = (depth, path, json)
        if depth > PROTOBUF_MAX_DEPTH:
            return  # deep enough to explain the error; no deeper, to bound the recursion
        # Inside a JSON document or a map entry the path stays that of the field holding it.
        transparent = descriptor.file.name == _JSON_FILE or descriptor.GetOptions().map_entry
        counts: dict[int, int] = {}
        data, pos = self.data, start
        while pos < end and self.bad_utf8 is None and self.corrupt is None:
            self.budget -= 1
            if self.budget < 0:
                return
            try:
                key, pos = _varint(data, pos, end)
                wire = key & 7
                if wire == 0:
                    _, pos = _varint(data, pos, end)
                    continue
                if wire in (1, 5):
                    pos += 8 if wire == 1 else 4
                    continue
                if wire != 2:
                    raise _Corrupt
                length, pos = _varint(data, pos, end)
                value_start, pos = pos, pos + length
                if pos > end:
                    raise _Corrupt
            except _Corrupt:
                self.corrupt = path
                return
            field = descriptor.fields_by_number.get(key >> 3)
            if field is None:
                continue
            name = path if transparent else _field_path(path, field, counts)
            if field.type == FieldDescriptor.TYPE_STRING:
                try:
                    data[value_start:pos].decode("utf-8")
                except UnicodeDecodeError:
                    self.bad_utf8 = name
            elif field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None:
                child = field.message_type
                self.message(child, value_start, pos, name, depth + 1, json or child.file.name == _JSON_FILE)


def _field_path(path: str, field: FieldDescriptor, counts: dict[int, int]) -> str:
    name = f"{path}.{field.name}" if path else field.name
    if not field.is_repeated or (field.message_type is not None and field.message_type.GetOptions().map_entry):
        return name
    index = counts.get(field.number, 0)
    counts[field.number] = index + 1
    return f"{name}[{index}]"


def diagnose(descriptor: Descriptor | None, data: bytes, error: str) -> InvalidArgument:
    """Why `data` is not a valid `descriptor` message, naming the field when it can be found."""
    type_name = descriptor.full_name if descriptor is not None else "request"
    if descriptor is None:
        return InvalidArgument("request", f"cannot be decoded: {error}")
    walk = _Walk(data)
    walk.message(descriptor, 0, len(data), "", 1, False)
    depth, deepest, json = walk.deepest
    if walk.bad_utf8 is not None:
        return InvalidArgument(walk.bad_utf8 or "request", "is not valid UTF-8")
    if walk.corrupt is not None:
        return InvalidArgument(walk.corrupt or "request", f"is not a valid {type_name}: corrupt protobuf wire format")
    if "depth" in error.lower() or depth > PROTOBUF_MAX_DEPTH:
        if json and deepest:
            return InvalidArgument(deepest, f"must nest at most {limits.JSON_MAX_DEPTH} levels deep")
        return InvalidArgument(deepest or "request", "is nested too deeply")
    return InvalidArgument("request", f"cannot be decoded as {type_name}: {error}")


def safe_deserializer(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """`deserializer`, returning an Undecodable instead of raising."""
    descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as err:  # any bytes protobuf refuses are the caller's fault
            return Undecodable(diagnose(descriptor, data, str(err)))

    return deserialize


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, Undecodable):
            raise request.error
        yield request


async def _responses(result: Any) -> AsyncIterator[Any]:
    """What a server-streaming behavior produced: an async generator, or a coroutine that wrote
    its replies with context.write (as in ossa_runtime.interceptors.wrap_handler)."""
    if inspect.isasyncgen(result):
        async for item in result:
            yield item
    elif inspect.isawaitable(result):
        await result


def guard(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler, answering an undecodable request with its InvalidArgument."""
    h: Any = handler
    if h.request_deserializer is None:
        return handler
    codec = (safe_deserializer(h.request_deserializer), h.response_serializer)
    if h.unary_unary:
        unary_unary = h.unary_unary

        async def one_to_one(request: Any, context: Any) -> Any:
            if isinstance(request, Undecodable):
                raise request.error
            return await unary_unary(request, context)

        return grpc.unary_unary_rpc_method_handler(one_to_one, *codec)
    if h.unary_stream:
        unary_stream = h.unary_stream

        async def one_to_many(request: Any, context: Any) -> AsyncIterator[Any]:
            if isinstance(request, Undecodable):
                raise request.error
            async for item in _responses(unary_stream(request, context)):
                yield item

        return grpc.unary_stream_rpc_method_handler(one_to_many, *codec)
    if h.stream_unary:
        stream_unary = h.stream_unary

        async def many_to_one(requests: AsyncIterator[Any], context: Any) -> Any:
            return await stream_unary(_checked(requests), context)

        return grpc.stream_unary_rpc_method_handler(many_to_one, *codec)
    stream_stream = h.stream_stream

    async def many_to_many(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        async for item in _responses(stream_stream(_checked(requests), context)):
            yield item

    return grpc.stream_stream_rpc_method_handler(many_to_many, *codec)
