"""What the proto descriptor cannot say about the REST API, as tables the OpenAPI builder reads.

Success codes other than 200, extra error statuses, required fields, the shared error shape and
the JSON Schemas of well-known and scalar types (proto3 JSON mapping as Envoy's transcoder prints).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2

FDP = descriptor_pb2.FieldDescriptorProto
Schema = dict[str, Any]

# Success status by full method name; otherwise Create* -> 201, Delete* -> 204, else 200 (the
# rule: `success_status` below). The OpenAPI document and the gateway both use
# it: Envoy's route for each method whose status is not 200 carries it as `http_status` metadata,
# which envoy/status.lua applies to REST replies (gateway_http/envoy_config/render.py), so the
# services send nothing for it.
SUCCESS_STATUS: dict[str, int] = {
    "ossa.registry.v1.AgentRegistryService.CreateAgent": 201,
    "ossa.registry.v1.AgentRegistryService.DeleteAgent": 204,
    "ossa.orchestrator.v1.OrchestratorService.StartExecution": 202,
    "ossa.orchestrator.v1.OrchestratorService.StartExecutions": 202,
    "ossa.monitoring.v1.MonitoringService.IngestMetrics": 202,
    "ossa.search.v1.SearchService.AddKnowledge": 201,
    "ossa.auth.v1.AuthService.RevokeApiKey": 204,
    "ossa.auth.v1.AuthService.RevokeToken": 204,
}


def success_status(method: str) -> int:
    """The HTTP status of a successful REST call of `method` (full name: package.Service.Method):
    SUCCESS_STATUS, else Create* -> 201, Delete* -> 204, else 200. The gateway's Envoy routes
    carry the same code (gateway_http/envoy_config/render.py)."""
    if method in SUCCESS_STATUS:
        return SUCCESS_STATUS[method]
    name = method.rsplit(".", 1)[-1]
    return 201 if name.startswith("Create") else 204 if name.startswith("Delete") else 200


# Methods that answer another status with their normal reply body, e.g. an unhealthy report.
ALSO_SUCCESS: dict[str, tuple[int, str]] = {
    "ossa.gateway.v1.GatewayService.GetHealth": (
        503,
        "The platform is unhealthy: the body is the same health report. An error body instead "
        "means the gateway could not produce a report.",
    ),
}
# Error statuses beyond the ones every operation has, by full method name.
EXTRA_ERRORS: dict[str, list[str]] = {
    "ossa.auth.v1.AuthService.Login": ["401"],  # a wrong or revoked API key
    "ossa.auth.v1.AuthService.Logout": ["404"],  # no such session
}
# Operations never rate limited (ossa_runtime.ratelimit: health checks); every other one may answer 429.
NOT_RATE_LIMITED = frozenset({"ossa.gateway.v1.GatewayService.GetHealth"})
# Headers of the shared error responses, by component name.
ERROR_HEADERS: dict[str, Schema] = {
    "TooManyRequests": {
        "Retry-After": {
            "description": "Seconds until the caller's rate-limit window ends.",
            "schema": {"type": "integer", "minimum": 1},
        }
    }
}
# Required fields by full message name (proto3 has no `required`).
REQUIRED: dict[str, list[str]] = {
    "ossa.registry.v1.Agent": ["id", "name", "type", "version", "status"],
    "ossa.registry.v1.CreateAgentRequest": ["name", "type", "version"],
    "ossa.orchestrator.v1.CreateWorkflowRequest": ["name", "version", "definition"],
    "ossa.orchestrator.v1.StartExecutionResponse": ["execution_id", "workflow_id", "status", "started_at"],
    "ossa.auth.v1.LoginRequest": ["api_key"],
    "ossa.auth.v1.CreateApiKeyRequest": ["name", "role"],
    # Replies: fields Envoy always prints (always_print_primitive_fields).
    "ossa.gateway.v1.GetHealthResponse": ["status", "version", "components"],
    "ossa.gateway.v1.ComponentHealth": ["name", "kind", "state"],
}

ERROR_SCHEMA: Schema = {
    "type": "object",
    "description": (
        "The one error shape of the whole API, for service errors and for the gateway's own "
        "replies (bad JSON, unknown route, service down...)."
    ),
    "required": ["code", "message", "details"],
    "properties": {
        "code": {
            "type": "integer",
            "format": "int32",
            "minimum": 1,
            "maximum": 16,
            "description": (
                "gRPC status code (google.rpc.Code): 3 INVALID_ARGUMENT, 4 DEADLINE_EXCEEDED, "
                "5 NOT_FOUND, 6 ALREADY_EXISTS, 9 FAILED_PRECONDITION, 13 INTERNAL, 14 UNAVAILABLE..."
            ),
        },
        "message": {"type": "string", "description": "What went wrong, naming the field or resource."},
        "details": {
            "type": "array",
            "description": (
                "Typed details (google.protobuf.Any), e.g. a google.rpc.BadRequest whose "
                "field_violations name each invalid field."
            ),
            "items": {
                "type": "object",
                "required": ["@type"],
                "properties": {"@type": {"type": "string"}},
            },
        },
    },
}
# Error responses shared by every operation (components/responses), by status code.
ERROR_RESPONSES: dict[str, tuple[str, str]] = {
    "400": ("BadRequest", "The request is invalid: malformed JSON, an unknown query parameter or a bad field."),
    "404": ("NotFound", "No such resource."),
    "409": ("Conflict", "A resource with the same unique key already exists."),
    "401": ("Unauthenticated", "No valid credentials: a missing, malformed, expired or revoked token or API key."),
    "429": ("TooManyRequests", "Rate limit exceeded (per caller and operation); retry after Retry-After seconds."),
    "500": ("InternalError", "The service failed."),
    "503": ("Unavailable", "A service is down or overloaded; try again later."),
}

WELL_KNOWN: dict[str, Schema] = {
    ".google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    ".google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    ".google.protobuf.Struct": {"type": "object"},
    ".google.protobuf.Value": {},
    ".google.protobuf.ListValue": {"type": "array"},
    ".google.protobuf.Empty": {"type": "object"},
    ".google.protobuf.FieldMask": {"type": "string"},
    ".google.protobuf.Any": {"type": "object", "required": ["@type"], "properties": {"@type": {"type": "string"}}},
    ".google.protobuf.DoubleValue": {"type": "number"},
    ".google.protobuf.FloatValue": {"type": "number"},
    ".google.protobuf.Int32Value": {"type": "integer", "format": "int32"},
    ".google.protobuf.UInt32Value": {"type": "integer", "minimum": 0},
    ".google.protobuf.Int64Value": {"type": "string", "format": "int64"},
    ".google.protobuf.UInt64Value": {"type": "string", "format": "uint64"},
    ".google.protobuf.BoolValue": {"type": "boolean"},
    ".google.protobuf.StringValue": {"type": "string"},
    ".google.protobuf.BytesValue": {"type": "string", "contentEncoding": "base64"},
}
SCALARS: dict[int, Schema] = {
    FDP.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FDP.TYPE_FLOAT: {"type": "number", "format": "float"},
    FDP.TYPE_INT32: {"type": "integer", "format": "int32"},
    FDP.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FDP.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FDP.TYPE_UINT32: {"type": "integer", "minimum": 0, "maximum": 4294967295},
    FDP.TYPE_FIXED32: {"type": "integer", "minimum": 0, "maximum": 4294967295},
    # proto3 JSON writes 64-bit integers as strings.
    FDP.TYPE_INT64: {"type": "string", "format": "int64"},
    FDP.TYPE_SINT64: {"type": "string", "format": "int64"},
    FDP.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FDP.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FDP.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FDP.TYPE_BOOL: {"type": "boolean"},
    FDP.TYPE_STRING: {"type": "string"},
    FDP.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
