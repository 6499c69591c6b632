"""HTTP status codes for transcoded REST calls.

Envoy's transcoder answers every success with 200. A method whose success status is always
another one (201/202/204) needs nothing here: it is tabled in gateway_http/openapi_tables.py
(SUCCESS_STATUS and the Create*/Delete* rule), Envoy's route for the method carries it and the
gateway's Lua filter (envoy/status.lua) applies it to REST replies.

`set_http_status` is only for a status that depends on the reply (503 for an unhealthy health
report): it sends `x-http-code` as initial metadata just before the reply, which the Lua filter
turns into the HTTP status, over the route's (only when the call succeeded, and never for gRPC
clients, who ignore the header). It costs an extra HEADERS frame per call: do not use it for a
static code.
"""

from __future__ import annotations

from typing import Any

import grpc

HTTP_CODE_HEADER = "x-http-code"
CREATED, ACCEPTED, NO_CONTENT, SERVICE_UNAVAILABLE = 201, 202, 204, 503


async def set_http_status(context: grpc.aio.ServicerContext[Any, Any], code: int) -> None:
    """Call right before returning a successful response, never before an error; only for a code
    that depends on the reply (a static one belongs in gateway_http/openapi_tables.py)."""
    await context.send_initial_metadata(((HTTP_CODE_HEADER, str(code)),))
