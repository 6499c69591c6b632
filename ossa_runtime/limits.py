"""The platform's input limits that more than one module enforces, in one place.

Each is enforced where it is cheapest to refuse, and every refusal names what is too big:

- Envoy (gateway_http/envoy_config/render.py renders them): a REST request body of at most
  HTTP_MAX_BODY_BYTES (413) and request headers, the URL included, of at most HTTP_MAX_HEADERS_KB
  (431). gRPC requests pass through Envoy unbuffered: each service checks their size itself.
- Every grpc.aio server (ossa_runtime/server.py): messages of at most GRPC_MAX_MESSAGE_BYTES
  (RESOURCE_EXHAUSTED) and metadata of at most GRPC_MAX_METADATA_BYTES (Envoy adds a copy of the
  REST path, so this is more than twice the HTTP header limit). A message that protobuf cannot
  decode (corrupt, invalid UTF-8, nested deeper than protobuf allows) is INVALID_ARGUMENT naming
  the field (ossa_runtime/decode.py).
- JSON documents (google.protobuf.Struct fields: agent config and metadata, workflow
  definitions, execution context, task output; ossa_runtime/validate.py): at most
  JSON_MAX_DEPTH levels deep, no NUL characters (PostgreSQL cannot store them), no NaN or
  Infinity, and at most a per-field number of bytes of JSON.
- Error replies (ossa_runtime/errors.py) list at most ERROR_MAX_VIOLATIONS fields, each clipped,
  so that an error about a huge request stays small enough for HTTP/2 trailers.

Per-field limits (name lengths, steps per workflow, points per batch, ...) live with the
validation of each service and are listed in docs/api.md ("Limits").
"""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB

HTTP_MAX_BODY_BYTES = 4 * MIB
HTTP_MAX_HEADERS_KB = 32
GRPC_MAX_MESSAGE_BYTES = 16 * MIB
GRPC_MAX_METADATA_BYTES = 128 * KIB

JSON_MAX_DEPTH = 20  # {"a": 1} is 1 level; protobuf itself stops decoding at about 32
DOCUMENT_MAX_BYTES = 64 * KIB  # agent config/metadata, knowledge metadata
CONTEXT_MAX_BYTES = 1 * MIB  # an execution's context
DEFINITION_MAX_BYTES = 1 * MIB  # a workflow definition
OUTPUT_MAX_BYTES = 4 * MIB  # a task's output

ERROR_MAX_VIOLATIONS = 20
ERROR_FIELD_MAX_CHARS = 128
ERROR_DESCRIPTION_MAX_CHARS = 300
ERROR_MESSAGE_MAX_CHARS = 4096
