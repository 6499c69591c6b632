"""ossa_runtime.errors: domain errors carry the right code and name the bad fields."""

from __future__ import annotations

import grpc
from google.rpc import code_pb2, error_details_pb2

from ossa_runtime import errors, limits


def test_invalid_argument_carries_bad_request_details() -> None:
    err = errors.InvalidArgument(
        [errors.FieldViolation("name", "is required"), errors.FieldViolation("version", "bad")]
    )
    status = err.to_status()
    assert status.code == code_pb2.INVALID_ARGUMENT
    assert status.message == "invalid request: name: is required; version: bad"
    detail = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(detail)
    assert [(v.field, v.description) for v in detail.field_violations] == [("name", "is required"), ("version", "bad")]


def test_single_field_shorthand() -> None:
    err = errors.InvalidArgument("agent_id", "must be a UUID")
    assert [v.field for v in err.violations] == ["agent_id"]


def test_codes_map_to_the_documented_http_statuses() -> None:
    # Envoy's transcoder maps these gRPC codes to 404, 409, 400, 503, 401, 403, 429.
    expected = {
        errors.NotFound: grpc.StatusCode.NOT_FOUND,
        errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
        errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
        errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
        errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
        errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
        errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
    for cls, code in expected.items():
        status = cls("boom").to_status()
        assert status.code == code.value[0] and status.message == "boom"


def test_internal_status_hides_internals() -> None:
    status = errors.internal_status("abc123")
    assert status.code == code_pb2.INTERNAL
    assert "abc123" in status.message


def test_a_huge_invalid_argument_stays_small() -> None:
    # A hundred bad steps, each naming a long key: the reply must still fit in HTTP/2 trailers.
    huge = "k" * (64 * 1024)
    err = errors.InvalidArgument([errors.FieldViolation(f"steps[{i}].{huge}", huge) for i in range(100)])
    assert len(err.violations) == limits.ERROR_MAX_VIOLATIONS
    assert all(len(v.field) <= limits.ERROR_FIELD_MAX_CHARS for v in err.violations)
    assert all(len(v.description) <= limits.ERROR_DESCRIPTION_MAX_CHARS for v in err.violations)
    assert err.violations[0].field.startswith("steps[0].kkk") and err.violations[0].field.endswith("...")
    status = err.to_status()
    assert len(status.message) <= limits.ERROR_MESSAGE_MAX_CHARS
    assert len(status.SerializeToString()) < 16 * 1024
    few = errors.InvalidArgument([errors.FieldViolation(f"f{i}", "bad") for i in range(25)])
    assert few.message.endswith("f19: bad; and 5 more")


def test_any_domain_message_is_clipped() -> None:
    assert len(errors.NotFound("x" * 100_000).message) == limits.ERROR_MESSAGE_MAX_CHARS
    assert errors.clip("short", 10) == "short" and errors.clip("abcdefghijk", 10) == "abcdefg..."
