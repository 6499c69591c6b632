"""ossa_runtime.logging: one JSON object per line in the spec's format."""

from __future__ import annotations

import io
import json
import logging

from ossa_runtime import logging as ossa_logging
from ossa_runtime import tracing


def test_lines_follow_the_spec_format() -> None:
    stream = io.StringIO()
    ossa_logging.configure_logging("ossa-test", "info", stream)
    parent = tracing.context_of("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    fields: dict[str, object] = {}
    token = ossa_logging.set_call_fields(fields)
    try:
        with tracing.new_provider("test").get_tracer("t").start_as_current_span("call", context=parent) as span:
            ossa_logging.annotate(user_id="user-123", agent_id="", ignored=None)
            logging.getLogger("ossa.test").info(
                "Request processed", extra={"metadata": {"method": "POST", "status": 202, "duration_ms": 4.5}}
            )
    finally:
        ossa_logging.reset_call_fields(token)
        logging.getLogger().handlers.clear()
    entry = json.loads(stream.getvalue().strip())
    assert list(entry) == ["timestamp", "level", "service", "trace_id", "span_id", "message", "metadata"]
    assert entry["timestamp"].endswith("Z") and len(entry["timestamp"]) == 24
    assert entry["level"] == "info" and entry["service"] == "ossa-test"
    assert entry["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert entry["span_id"] == format(span.get_span_context().span_id, "016x") != "b7ad6b7169203331"
    assert entry["metadata"] == {"user_id": "user-123", "method": "POST", "status": 202, "duration_ms": 4.5}


def test_lines_outside_a_span_have_empty_ids() -> None:
    stream = io.StringIO()
    ossa_logging.configure_logging("ossa-test", "info", stream)
    try:
        ossa_logging.annotate(user_id="nobody")  # no call in progress: ignored
        logging.getLogger("ossa.test").info("idle")
    finally:
        logging.getLogger().handlers.clear()
    entry = json.loads(stream.getvalue().strip())
    assert entry["trace_id"] == entry["span_id"] == "" and entry["metadata"] == {}


def test_exceptions_are_kept_in_metadata() -> None:
    stream = io.StringIO()
    ossa_logging.configure_logging("ossa-test", "info", stream)
    try:
        try:
            raise ValueError("kaput")
        except ValueError:
            logging.getLogger("ossa.test").exception("failed")
    finally:
        logging.getLogger().handlers.clear()
    entry = json.loads(stream.getvalue().strip())
    assert entry["level"] == "error"
    assert "ValueError: kaput" in entry["metadata"]["exception"]
