"""The one server interceptor chain: trace span, access log, domain error → gRPC status.

Order matters and is fixed here so later concerns slot in without touching services:
the OpenTelemetry server span first (ossa_runtime.tracing: it continues the caller's
`traceparent`, so every log line carries its ids), then access logging (sees the final status),
then authentication/authorization, then error mapping next to the handler.
Request metrics (ossa_runtime.metrics) are recorded where the access log line is written, with
the same method, status and duration.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc

from ossa_runtime import logging as ossa_logging
from ossa_runtime import metrics, tracing
from ossa_runtime.decode import guard
from ossa_runtime.errors import DomainError, internal_status
from ossa_runtime.unreachable import unavailable

log = logging.getLogger("ossa.access")
_QUIET_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")

Behavior = Callable[..., Any]
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _metadata(context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str):
            out[key] = value
    return out


async def _abort(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException, method: str) -> None:
    extra: tuple[tuple[str, str], ...] = ()
    exc = unavailable(exc)  # PostgreSQL or Redis down: UNAVAILABLE, which callers retry
    if isinstance(exc, DomainError):
        status = exc.to_status()
        extra = exc.trailing_metadata()  # e.g. retry-after on RESOURCE_EXHAUSTED
    else:
        reference = secrets.token_hex(6)
        log.error("unhandled error in %s", method, exc_info=exc, extra={"metadata": {"reference": reference}})
        status = internal_status(reference)
    await context.abort(
        _CODES[status.code],
        status.message,
        trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()), *extra),
    )


class _Call:
    """What the access log needs to know about one call."""

    def __init__(self, method: str, context: grpc.aio.ServicerContext[Any, Any], service: str = "") -> None:
        self.method = method
        self.service = service
        self.context = context
        meta = _metadata(context)
        self.span = tracing.rpc_context(meta.get("traceparent"))  # ids for logs when no span is recorded
        self.path = meta.get("x-envoy-original-path", "")
        self.http_method = meta.get("x-envoy-original-method", "")
        self.started = time.perf_counter()
        # user_id/agent_id and the like, added by inner layers through ossa_logging.annotate().
        self.fields: dict[str, Any] = {}
        self.token = ossa_logging.set_call_fields(self.fields)

    async def __aenter__(self) -> _Call:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        """Map an unexpected or domain error to a status (aborting the call), then log and count it."""
        try:
            if isinstance(exc, Exception) and not isinstance(exc, grpc.aio.AbortError | grpc.aio.BaseError):
                await _abort(self.context, exc, self.method)
        finally:
            self.finish(exc)

    def finish(self, exc: BaseException | None) -> None:
        code = self.context.code() if hasattr(self.context, "code") else None
        if exc is not None and isinstance(exc, DomainError):
            status = exc.code.name
        elif isinstance(exc, asyncio.CancelledError):  # the client went away or its deadline passed
            remaining = self.context.time_remaining() if hasattr(self.context, "time_remaining") else None
            status = "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
        elif exc is not None and not isinstance(exc, grpc.aio.AbortError):
            status = "INTERNAL"
        else:
            status = code.name if isinstance(code, grpc.StatusCode) else "OK"
        seconds = time.perf_counter() - self.started
        duration_ms = round(seconds * 1000, 3)
        metrics.observe_rpc(self.service, self.method, status, seconds)
        level = logging.DEBUG if self.method.startswith(_QUIET_PREFIXES) else logging.INFO
        if log.isEnabledFor(level):
            meta: dict[str, Any] = {"method": self.method, "status": status, "duration_ms": duration_ms}
            if self.path:
                meta["path"] = self.path
                meta["http_method"] = self.http_method
            log.log(level, "rpc finished", extra={"metadata": meta})
        ossa_logging.reset_call_fields(self.token)
        tracing.end_rpc_context(self.span)


Scope = Callable[[str, grpc.aio.ServicerContext[Any, Any]], AbstractAsyncContextManager[Any]]


def wrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any], method: str, scope: Scope
) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler, each call of which runs inside `scope(method, context)` (a stream: for
    its whole life). The one place that knows the four kinds of gRPC handler."""

    def unary(inner: Behavior) -> Behavior:
        async def behavior(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            async with scope(method, context):
                return await inner(request, context)

        return behavior

    def streaming(inner: Behavior) -> Behavior:
        async def behavior(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            async with scope(method, context):
                result = inner(request, context)
                if inspect.isasyncgen(result):
                    async for item in result:
                        yield item
                elif isinstance(result, Awaitable):
                    await result

        return behavior

    h: Any = handler
    codec = (h.request_deserializer, h.response_serializer)
    if h.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary(h.unary_unary), *codec)
    if h.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary(h.stream_unary), *codec)
    if h.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming(h.unary_stream), *codec)
    return grpc.stream_stream_rpc_method_handler(streaming(h.stream_stream), *codec)


class ScopedInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """A server interceptor that runs the calls it `covers` inside its `scope`."""

    def covers(self, method: str) -> bool:
        return True

    def scope(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not self.covers(method):
            return handler
        return wrap_handler(handler, method, self.scope)


class ObservabilityInterceptor(ScopedInterceptor):
    """Trace context, access log, request metrics and error mapping for every RPC of a service."""

    def __init__(self, service: str = "") -> None:
        self.service = service  # the `service` label of the request metrics

    def scope(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> _Call:
        return _Call(method, context, self.service)


class Chain(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Several ScopedInterceptors, outermost first, then the decode guard, as one interceptor
    whose wrapped handler for a method is built on its first call and reused.

    grpc.aio asks each interceptor for the handler on every call: as separate interceptors, the
    four layers built four handlers and their closures per call. Reused while the service hands
    out the same handler object (it does: a registered method's handler never changes).
    """

    def __init__(self, layers: Sequence[ScopedInterceptor]) -> None:
        self.layers = list(layers)
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    def wrap(self, handler: grpc.RpcMethodHandler[Any, Any], method: str) -> grpc.RpcMethodHandler[Any, Any]:
        """`handler` inside every layer that covers `method`, undecodable requests refused innermost."""
        wrapped = guard(handler)
        for layer in reversed(self.layers):
            if layer.covers(method):
                wrapped = wrap_handler(wrapped, method, layer.scope)
        return wrapped

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None:  # an unknown method: UNIMPLEMENTED, nothing to remember
            return handler
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = self.wrap(handler, method)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


def default_interceptors(service: str = "", auth: Any = None, ratelimit: Any = None) -> list[Any]:
    """The chain every OSSA service installs; `auth` (ossa_runtime.auth.AuthInterceptor) runs
    inside the access log, so its refusals are logged and counted like any other status, and
    `ratelimit` (ossa_runtime.ratelimit.RateLimitInterceptor) right after it (it limits by caller).
    Innermost, the decode guard turns a request protobuf cannot decode into INVALID_ARGUMENT naming
    the field (ossa_runtime.decode), once the caller has been authenticated. The trace span, when
    spans are exported, is opentelemetry's own interceptor, outside the rest."""
    layers = [layer for layer in (ObservabilityInterceptor(service), auth, ratelimit) if layer is not None]
    return [i for i in (tracing.server_interceptor(), Chain(layers)) if i is not None]
