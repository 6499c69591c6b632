"""One execution of a workflow is one trace (in-memory exporter, real registry + orchestrator + SDK agent).

The caller's `traceparent` arrives as gRPC metadata, as Envoy forwards it for a REST request.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from orchestrator_svc.server import build_server as build_orchestrator
from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_runtime import tracing
from ossa_runtime.settings import Settings
from ossa_sdk import Agent
from registry_svc.server import build_server as build_registry
from tests.integration.orchestration import Client, fast, step

CALLER_TRACE = secrets.token_hex(16)
CALLER_SPAN = secrets.token_hex(8)


@pytest.fixture(scope="module")
def exporter() -> AsyncIterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    tracing.install(tracing.new_provider("ossa-test", [SimpleSpanProcessor(spans)]), exporting=True)
    yield spans
    tracing.shutdown()


@pytest.fixture(scope="module")
async def stack(settings: Settings, exporter: InMemorySpanExporter) -> AsyncIterator[tuple[str, str]]:
    settings = settings.replace(auth_enabled=False)  # tracing is the subject here (tests/integration/test_auth_*)
    registry, registry_port = await build_registry(settings, port=0)
    await registry.start()
    orchestrator, port = await build_orchestrator(fast(settings, registry_port), port=0)
    await orchestrator.start()
    yield f"127.0.0.1:{port}", f"127.0.0.1:{registry_port}"
    await orchestrator.stop()
    await registry.stop()


class Flaky:
    """Fails the first attempt of step `c` (retryable), echoes everything else."""

    def __init__(self) -> None:
        self.failed = False

    async def __call__(self, task_input: dict[str, Any]) -> dict[str, Any]:
        if task_input["params"].get("flaky") and not self.failed:
            self.failed = True
            raise RuntimeError("first attempt fails")
        return {"ok": True}


def hexid(value: int) -> str:
    return format(value, "016x")


def by_name(spans: Sequence[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


async def spans_of(
    exporter: InMemorySpanExporter, trace_id: str, until: str, runs: int = 0, reports: int = 0
) -> list[ReadableSpan]:
    """The trace's finished spans once it has `until`, `runs` task.run spans and `reports` server
    spans of CompleteTask/FailTask (the agent ends its span after the orchestrator answered)."""
    for _ in range(400):
        spans = [s for s in exporter.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id]
        done = [s for s in spans if s.name.endswith(("/CompleteTask", "/FailTask")) and s.kind == SpanKind.SERVER]
        if by_name(spans, until) and len(by_name(spans, "task.run")) >= runs and len(done) >= reports:
            return spans
        await asyncio.sleep(0.05)
    raise AssertionError(f"trace {trace_id} incomplete: {sorted(s.name for s in spans)}")


async def test_one_execution_is_one_trace_with_every_attempt(
    stack: tuple[str, str], exporter: InMemorySpanExporter
) -> None:
    client = Client(*stack)
    agent = Agent(
        f"traced-{secrets.token_hex(3)}",
        capabilities=["trace-echo"],
        handler=Flaky(),
        registry=stack[1],
        orchestrator=stack[0],
        heartbeat_interval=0.2,
        grace_seconds=1.0,
    )
    serving = asyncio.create_task(agent.serve())
    try:
        workflow = await client.published(
            [
                step("a", "trace-echo"),
                step("b", "trace-echo", depends_on=["a"]),
                step("c", "trace-echo", depends_on=["a"], input={"flaky": True}, max_retries=2),
            ]
        )
        reply = await client.orch.StartExecution(
            pb.StartExecutionRequest(workflow_id=workflow.id),
            metadata=(("traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"),),
        )
        execution = await client.wait_status(reply.execution_id, "completed")
        spans = await spans_of(exporter, CALLER_TRACE, "workflow.execution", runs=4, reports=4)
    finally:
        agent.stop()
        await asyncio.wait_for(serving, 30)
        await client.close()

    assert execution.trace_id == CALLER_TRACE
    ids = {hexid(s.context.span_id): s for s in spans}

    def parent(span: ReadableSpan) -> ReadableSpan:
        assert span.parent is not None, span.name
        return ids[hexid(span.parent.span_id)]

    # The call that started it continues the caller's trace; the execution's span is its child.
    (start,) = [s for s in spans if s.name.endswith("/StartExecution") and s.kind == SpanKind.SERVER]
    assert start.parent is not None and hexid(start.parent.span_id) == CALLER_SPAN
    (run,) = by_name(spans, "workflow.execution")
    assert parent(run) is start and run.attributes is not None
    assert run.attributes["ossa.execution_id"] == reply.execution_id and run.attributes["ossa.status"] == "completed"

    # Every attempt is a child of the execution, the failed first attempt of c included.
    attempts = by_name(spans, "task.attempt")
    assert sorted((s.name, s.attributes["ossa.attempt"]) for s in attempts if s.attributes) == [
        ("task.attempt a", 1),
        ("task.attempt b", 1),
        ("task.attempt c", 1),
        ("task.attempt c", 2),
    ]
    assert all(parent(s) is run for s in attempts)
    outcomes = {(s.name, s.attributes["ossa.attempt"]): s for s in attempts if s.attributes}
    assert outcomes[("task.attempt c", 1)].status.status_code == StatusCode.ERROR
    assert outcomes[("task.attempt c", 2)].status.status_code != StatusCode.ERROR

    # The agent's work on each attempt is a child of that attempt, and its report a child of that.
    runs = by_name(spans, "task.run")
    assert len(runs) == 4
    for span in runs:
        attempt = parent(span)
        assert attempt.name == span.name.replace("task.run", "task.attempt")
        assert attempt.attributes and span.attributes
        assert attempt.attributes["ossa.attempt"] == span.attributes["ossa.attempt"]
    reports = [s for s in spans if s.name.endswith(("/CompleteTask", "/FailTask")) and s.kind == SpanKind.SERVER]
    assert sorted(s.name.rsplit("/", 1)[1] for s in reports) == ["CompleteTask"] * 3 + ["FailTask"]
    for report in reports:  # sent on the batched Work stream: a child of the run (by RPC: of its client span)
        sent = parent(report)
        if sent.kind == SpanKind.CLIENT:
            sent = parent(sent)
        assert sent.name.startswith("task.run")


async def test_without_a_caller_trace_the_execution_starts_one(
    stack: tuple[str, str], exporter: InMemorySpanExporter
) -> None:
    client = Client(*stack)
    try:
        workflow = await client.published([step("only", "nobody-serves-this")])
        execution_id = await client.start(workflow.id)
        execution = await client.execution(execution_id)
        await client.orch.CancelExecution(pb.CancelExecutionRequest(execution_id=execution_id))
        spans = await spans_of(exporter, execution.trace_id, "workflow.execution")
    finally:
        await client.close()
    (start,) = [s for s in spans if s.name.endswith("/StartExecution")]
    assert start.parent is None  # a new trace, rooted at the call
    (run,) = by_name(spans, "workflow.execution")
    assert run.parent is not None and run.parent.span_id == start.context.span_id
    assert run.attributes is not None and run.attributes["ossa.status"] == "cancelled"
    assert run.status.status_code == StatusCode.ERROR
