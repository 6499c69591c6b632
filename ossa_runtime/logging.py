"""JSON logging in the spec's format: one object per line.

    {"timestamp": "...Z", "level": "info", "service": "ossa-registry", "trace_id": "...",
     "span_id": "...", "message": "...", "metadata": {"method": ..., "status": ..., ...}}

`trace_id`/`span_id` are the current OpenTelemetry span's (ossa_runtime.tracing: the RPC's server
span, which continues the caller's W3C `traceparent`); `metadata` takes `extra={"metadata": {}}`.
Inside an RPC, `annotate(user_id=..., agent_id=...)` adds fields to every later line of that call,
including its access log line.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

_call_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("ossa_call_fields", default=None)


def set_call_fields(fields: dict[str, Any]) -> contextvars.Token[dict[str, Any] | None]:
    """Start collecting annotations for the current call (the access-log interceptor does this)."""
    return _call_fields.set(fields)


def reset_call_fields(token: contextvars.Token[dict[str, Any] | None]) -> None:
    with contextlib.suppress(ValueError):  # a streaming call's generator closed from another context
        _call_fields.reset(token)


def annotate(**fields: Any) -> None:
    """Add fields (user_id, agent_id, ...) to the metadata of the current call's log lines."""
    current = _call_fields.get()
    if current is not None:
        current.update({k: v for k, v in fields.items() if v not in (None, "")})


def current_ids() -> tuple[str, str]:
    """(trace_id, span_id) of the current span as hex, or empty strings outside any span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return "", ""
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        trace_id, span_id = current_ids()
        metadata: dict[str, Any] = {**(_call_fields.get() or {}), **(getattr(record, "metadata", None) or {})}
        if record.exc_info:
            metadata["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.name and not record.name.startswith("ossa"):
            metadata.setdefault("logger", record.name)
        entry = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "service": self.service,
            "trace_id": trace_id,
            "span_id": span_id,
            "message": record.getMessage(),
            "metadata": metadata,
        }
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure_logging(service: str, level: str = "info", stream: Any = None) -> None:
    """Route every logger to one JSON handler on stderr (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ossa", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    handler._ossa = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
