"""Client side: send a bearer token on every call of a grpc.aio channel.

    channel = grpc.aio.insecure_channel(target, interceptors=bearer_interceptors(token))

One interceptor per call shape adds `authorization: Bearer <token>` to the call's metadata
(unless the caller already set one). An empty token adds nothing, so the same code runs against
a platform with authentication turned off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

AUTHORIZATION = "authorization"
TokenSource = str | Callable[[], str]


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """Per-call metadata for one call: `(("authorization", "Bearer <token>"),)`."""
    return ((AUTHORIZATION, f"Bearer {token}"),) if token else ()


def _with_token(details: grpc.aio.ClientCallDetails, token: str) -> grpc.aio.ClientCallDetails:
    metadata = list(details.metadata or ())
    if not token or any(key == AUTHORIZATION for key, _ in metadata):
        return details
    metadata.append((AUTHORIZATION, f"Bearer {token}"))
    return grpc.aio.ClientCallDetails(
        details.method,
        details.timeout,
        grpc.aio.Metadata(*metadata),
        details.credentials,
        details.wait_for_ready,
    )


class _Bearer:
    def __init__(self, token: TokenSource) -> None:
        self.token = token

    async def _call(self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        token = self.token() if callable(self.token) else self.token
        return await continuation(_with_token(details, token), request)


class _UnaryUnary(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc,type-arg]
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await self._call(continuation, client_call_details, request)


class _UnaryStream(_Bearer, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc,type-arg]
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await self._call(continuation, client_call_details, request)


class _StreamUnary(_Bearer, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc,type-arg]
    async def intercept_stream_unary(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return await self._call(continuation, client_call_details, request_iterator)


class _StreamStream(_Bearer, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc,type-arg]
    async def intercept_stream_stream(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return await self._call(continuation, client_call_details, request_iterator)


def bearer_interceptors(token: TokenSource | None) -> list[Any]:
    """Client interceptors that send `token` on every call (none for an empty token).

    `token` may be a function returning the current token (e.g. a ServiceToken that re-mints).
    """
    if not token:
        return []
    return [_UnaryUnary(token), _UnaryStream(token), _StreamUnary(token), _StreamStream(token)]
