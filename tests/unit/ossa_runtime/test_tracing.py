"""ossa_runtime.tracing: exporters by configuration, spans recorded with ids chosen in advance."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from ossa_runtime import tracing
from ossa_runtime.settings import Settings


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.install(tracing.new_provider("ossa-test", [SimpleSpanProcessor(exporter)]), exporting=True)
    yield exporter
    tracing.shutdown()


@pytest.mark.parametrize(
    ("env", "kind"),
    [
        ({}, "none"),
        ({"OSSA_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, "otlp"),
        ({"OSSA_TRACING_EXPORTER": "console"}, "console"),
        ({"OSSA_TRACING_EXPORTER": "none", "OSSA_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, "none"),
    ],
)
def test_exporter_by_configuration(env: dict[str, str], kind: str) -> None:
    settings = Settings.from_env(env)
    assert settings.trace_exporter == kind
    exporter = tracing.exporter(settings)
    assert (exporter is None) == (kind == "none")
    tracing.configure(settings, "ossa-test")
    try:
        assert tracing.exporting() == (kind != "none")
    finally:
        tracing.shutdown()
        if exporter is not None:
            exporter.shutdown()
    assert not tracing.exporting()


def test_spans_have_ids_even_when_nothing_is_exported() -> None:
    with tracing.tracer().start_as_current_span("work"):
        trace_id, span_id = tracing.current_ids()
    assert len(trace_id) == 32 and len(span_id) == 16
    assert tracing.current_ids() == ("", "")


def test_record_span_uses_the_ids_chosen_when_it_started(spans: InMemorySpanExporter) -> None:
    trace_id, parent, chosen = "ab" * 16, "cd" * 8, tracing.new_span_id()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    tracing.record_span(
        "task.attempt x", trace_id=trace_id, span_id=chosen, parent_span_id=parent,
        start=start, end=start + timedelta(seconds=2), attributes={"ossa.attempt": 1, "none": None}, error="expired",
    )  # fmt: skip
    (span,) = spans.get_finished_spans()
    assert format(span.context.trace_id, "032x") == trace_id and format(span.context.span_id, "016x") == chosen
    assert span.parent is not None and format(span.parent.span_id, "016x") == parent
    assert span.end_time is not None and span.start_time is not None
    assert span.end_time - span.start_time == 2_000_000_000
    assert span.attributes == {"ossa.attempt": 1} and span.status.status_code == StatusCode.ERROR
    # The chosen id applied to that span only.
    with tracing.tracer().start_as_current_span("next") as other:
        assert format(other.get_span_context().span_id, "016x") != chosen


def test_record_span_without_ids_records_nothing(spans: InMemorySpanExporter) -> None:
    now = datetime.now(UTC)
    tracing.record_span("x", trace_id="", span_id="", parent_span_id="", start=now, end=now)
    assert spans.get_finished_spans() == ()


def test_traceparent_round_trip() -> None:
    header = tracing.traceparent("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    assert header == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert tracing.context_of(header) is not None
    for bad in ("", None, "garbage", "00-" + "0" * 32 + "-b7ad6b7169203331-01"):
        assert tracing.context_of(bad) is None
    assert tracing.traceparent("", "b7ad6b7169203331") == ""


def test_rpc_context_continues_the_callers_trace_without_recording() -> None:
    assert tracing.server_interceptor() is None  # nothing exported: no instrumentation span per call
    token = tracing.rpc_context("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    try:
        trace_id, span_id = tracing.current_ids()
        assert trace_id == "0af7651916cd43dd8448eb211c80319c" and span_id not in ("", "b7ad6b7169203331")
        assert tracing.rpc_context(None) is None  # already inside a call's span
    finally:
        tracing.end_rpc_context(token)
    assert tracing.current_ids() == ("", "")
    token = tracing.rpc_context("garbage")
    try:
        assert len(tracing.current_ids()[0]) == 32  # a new trace
    finally:
        tracing.end_rpc_context(token)


def test_server_interceptor_records_while_exporting(spans: InMemorySpanExporter) -> None:
    assert tracing.server_interceptor() is not None
