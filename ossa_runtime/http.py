"""HTTP status codes for transcoded REST calls.

Envoy's transcoder answers every success with 200. A servicer that means 201/202/204 (or 503 for
an unhealthy report) sends `x-http-code` as initial metadata just before it replies; the gateway's
Lua filter turns that into the HTTP status (only when the call succeeded, and never for gRPC
clients, who ignore the header).
"""

from __future__ import annotations

from typing import Any

import grpc

HTTP_CODE_HEADER = "x-http-code"
CREATED, ACCEPTED, NO_CONTENT, SERVICE_UNAVAILABLE = 201, 202, 204, 503


async def set_http_status(context: grpc.aio.ServicerContext[Any, Any], code: int) -> None:
    """Call right before returning a successful response, never before an error."""
    await context.send_initial_metadata(((HTTP_CODE_HEADER, str(code)),))
