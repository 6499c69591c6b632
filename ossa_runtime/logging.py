"""JSON logging in the spec's format: one object per line.

    {"timestamp": "...Z", "level": "info", "service": "ossa-registry", "trace_id": "...",
     "span_id": "...", "message": "...", "metadata": {"method": ..., "status": ..., ...}}

`trace_id`/`span_id` come from the current request context (set by the access-log interceptor
from a W3C `traceparent` header, or freshly generated); `metadata` takes `extra={"metadata": {}}`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import secrets
import sys
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class TraceContext:
    trace_id: str
    span_id: str


_current: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar("ossa_trace", default=None)


def new_trace(traceparent: str | None = None) -> TraceContext:
    """Continue the caller's W3C trace if `traceparent` is valid, else start a new one."""
    trace_id = ""
    if traceparent:
        parts = traceparent.split("-")
        if len(parts) == 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
            trace_id = parts[1].lower()
    return TraceContext(trace_id or secrets.token_hex(16), secrets.token_hex(8))


def set_trace(ctx: TraceContext | None) -> contextvars.Token[TraceContext | None]:
    return _current.set(ctx)


def reset_trace(token: contextvars.Token[TraceContext | None]) -> None:
    _current.reset(token)


def current_trace() -> TraceContext | None:
    return _current.get()


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        trace = _current.get()
        metadata: dict[str, Any] = dict(getattr(record, "metadata", None) or {})
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
            "trace_id": trace.trace_id if trace else "",
            "span_id": trace.span_id if trace else "",
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
