"""Domain errors and the one place that maps them to gRPC status codes (and so HTTP codes).

Services raise these; the error interceptor turns them into a gRPC status whose details carry a
`google.rpc.BadRequest` naming the offending field. Envoy's transcoder renders that as the
platform's one error shape: `{"code": <grpc code>, "message": "...", "details": [...]}`.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from ossa_runtime import limits


def clip(text: str, maximum: int) -> str:
    """`text`, cut to `maximum` characters (ending in "...") when it is longer."""
    return text if len(text) <= maximum else text[: maximum - 3] + "..."


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field: its path in the request (e.g. `capabilities[2]`) and why."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every error a service reports to its caller on purpose."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        message = clip(message, limits.ERROR_MESSAGE_MAX_CHARS)  # it travels in an HTTP/2 trailer
        super().__init__(message)
        self.message = message

    def to_status(self) -> status_pb2.Status:
        return status_pb2.Status(code=self.code.value[0], message=self.message)

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        """Extra gRPC trailing metadata sent with the status (none by default)."""
        return ()


class InvalidArgument(DomainError):
    """The request is malformed (HTTP 400); `violations` name each bad field.

    At most ERROR_MAX_VIOLATIONS are reported, each clipped (a request with a thousand bad steps or
    a megabyte-long key must not produce a reply too large for the trailers that carry it)."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: list[FieldViolation] | FieldViolation | str, message: str = "") -> None:
        if isinstance(violations, str):
            violations = [FieldViolation(violations, message or "is invalid")]
        elif isinstance(violations, FieldViolation):
            violations = [violations]
        shown = violations[: limits.ERROR_MAX_VIOLATIONS]
        self.violations = [
            FieldViolation(
                clip(v.field, limits.ERROR_FIELD_MAX_CHARS), clip(v.description, limits.ERROR_DESCRIPTION_MAX_CHARS)
            )
            for v in shown
        ]
        summary = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        if len(violations) > len(shown):
            summary += f"; and {len(violations) - len(shown)} more"
        super().__init__(f"invalid request: {summary}")

    def to_status(self) -> status_pb2.Status:
        status = super().to_status()
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in self.violations
                ]
            )
        )
        status.details.append(detail)
        return status


class NotFound(DomainError):
    """The named resource does not exist (HTTP 404)."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DomainError):
    """A resource with the same unique key exists (HTTP 409)."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    """The resource is not in a state that allows the operation (HTTP 400)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Conflict(DomainError):
    """A concurrent change won (HTTP 409)."""

    code = grpc.StatusCode.ABORTED


class Unavailable(DomainError):
    """A dependency (PostgreSQL, Redis, another service) cannot be reached (HTTP 503)."""

    code = grpc.StatusCode.UNAVAILABLE


class Unauthenticated(DomainError):
    """No valid credentials (HTTP 401)."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(DomainError):
    """Valid credentials lacking a permission (HTTP 403)."""

    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(DomainError):
    """A rate or quota limit was hit (HTTP 429)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class RateLimited(ResourceExhausted):
    """Too many calls (HTTP 429): the status carries a `google.rpc.RetryInfo` and the trailers a
    `retry-after` in whole seconds (Envoy passes it to REST clients as the Retry-After header)."""

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds

    def to_status(self) -> status_pb2.Status:
        status = super().to_status()
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=self.retry_after_seconds)))
        status.details.append(detail)
        return status

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("retry-after", str(self.retry_after_seconds)),)


def internal_status(reference: str) -> status_pb2.Status:
    """What a caller sees for an unexpected failure: no internals, a reference to the log line."""
    return status_pb2.Status(
        code=code_pb2.INTERNAL, message=f"internal error (reference {reference}); see the service log"
    )
