"""ossa_runtime.logging: one JSON object per line in the spec's format."""

from __future__ import annotations

import io
import json
import logging

from ossa_runtime import logging as ossa_logging


def test_lines_follow_the_spec_format() -> None:
    stream = io.StringIO()
    ossa_logging.configure_logging("ossa-test", "info", stream)
    token = ossa_logging.set_trace(ossa_logging.new_trace("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
    try:
        logging.getLogger("ossa.test").info(
            "Request processed", extra={"metadata": {"method": "POST", "status": 202, "duration_ms": 4.5}}
        )
    finally:
        ossa_logging.reset_trace(token)
        logging.getLogger().handlers.clear()
    entry = json.loads(stream.getvalue().strip())
    assert list(entry) == ["timestamp", "level", "service", "trace_id", "span_id", "message", "metadata"]
    assert entry["timestamp"].endswith("Z") and len(entry["timestamp"]) == 24
    assert entry["level"] == "info" and entry["service"] == "ossa-test"
    assert entry["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert len(entry["span_id"]) == 16
    assert entry["metadata"] == {"method": "POST", "status": 202, "duration_ms": 4.5}


def test_bad_traceparent_starts_a_new_trace() -> None:
    for header in (None, "", "garbage", "00-" + "0" * 32 + "-b7ad6b7169203331-01"):
        ctx = ossa_logging.new_trace(header)
        assert len(ctx.trace_id) == 32 and ctx.trace_id != "0" * 32


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
