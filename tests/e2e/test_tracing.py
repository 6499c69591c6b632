"""One trace per workflow execution, across processes: REST client → Envoy → orchestrator → agent.

`ossa up` exports to a real OTLP/gRPC collector (tests/otlp.py): Envoy, the services and the
`ossa agent serve` process each send their own spans; together they must form one tree.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.agents import agents, wait_execution
from tests.e2e.platform import Platform, make_platform, request
from tests.otlp import CLIENT, SERVER, Collector, Span

CALLER_TRACE = secrets.token_hex(16)
CALLER_SPAN = secrets.token_hex(8)


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    with Collector() as c:
        yield c


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, collector: Collector) -> Iterator[Platform]:
    env = {"OSSA_OTLP_ENDPOINT": collector.endpoint, "OSSA_TRACING_FLUSH_MILLIS": "200", "OSSA_AUTH_ENABLED": "false"}
    p = make_platform(tmp_path_factory.mktemp("traced") / "data", env)
    p.start()
    yield p
    assert p.stop() == 0, p.log_tail()


def complete(spans: list[Span]) -> bool:
    """Everything arrived: the execution, both runs, both reports, and every span's parent."""
    names = [s.name for s in spans]
    ids = {s.span_id for s in spans} | {CALLER_SPAN}
    return (
        any(n.startswith("workflow.execution") for n in names)
        and sum(n.startswith("task.run") for n in names) == 2
        and sum(s.name.endswith("/CompleteTask") and s.kind == SERVER for s in spans) >= 2  # each report's
        and all(s.parent_span_id in ids for s in spans)
    )


def test_rest_execution_is_one_trace_across_processes(traced: Platform, collector: Collector, tmp_path: Path) -> None:
    with agents(traced, tmp_path, ("e2e-traced", "echo", 1)):
        steps = [{"id": "a", "capability": "e2e-traced"}, {"id": "b", "capability": "e2e-traced", "depends_on": ["a"]}]
        status, _, workflow = request(
            traced.gateway, "POST", "/api/v1/workflows",
            {"name": f"traced-{secrets.token_hex(3)}", "version": "1.0.0", "definition": {"steps": steps}},
        )  # fmt: skip
        assert status == 201, workflow
        assert request(traced.gateway, "POST", f"/api/v1/workflows/{workflow['id']}/publish", {})[0] == 200
        status, _, started = request(
            traced.gateway, "POST", "/api/v1/orchestrate", {"workflow_id": workflow["id"]},
            headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
        )  # fmt: skip
        assert status == 202, started
        execution = wait_execution(traced, started["execution_id"], "completed")
        assert execution["trace_id"] == CALLER_TRACE
        spans = collector.wait(CALLER_TRACE, complete)

    ids = {s.span_id: s for s in spans}

    def parent(span: Span) -> Span:
        assert span.parent_span_id in ids, f"{span.name}: parent {span.parent_span_id} not in the trace"
        return ids[span.parent_span_id]

    # Envoy's ingress span continues the client's; the orchestrator's server span is its child.
    (start,) = [s for s in spans if s.name.endswith("/StartExecution") and s.kind == SERVER]
    assert start.service == "ossa-orchestrator"
    ingress = parent(start)
    assert ingress.service == "ossa-gateway" and ingress.parent_span_id == CALLER_SPAN
    (run,) = [s for s in spans if s.name.startswith("workflow.execution")]
    assert parent(run) is start and run.attributes["ossa.status"] == "completed"

    attempts = [s for s in spans if s.name.startswith("task.attempt")]
    assert sorted(s.name for s in attempts) == ["task.attempt a", "task.attempt b"]
    assert all(parent(s) is run for s in attempts)
    for work in (s for s in spans if s.name.startswith("task.run")):
        assert work.service.startswith("ossa-agent-")  # recorded by the agent process
        assert parent(work).name == work.name.replace("task.run", "task.attempt")
    reports = [s for s in spans if s.name.endswith("/CompleteTask") and s.kind == SERVER]
    assert len(reports) == 2
    for report in reports:  # on the agent's batched Work stream: a child of its run; by RPC: agent's
        sent = parent(report)  # client span → Envoy (the agent dials the gateway) → orchestrator
        if sent.service == "ossa-gateway":
            sent = parent(sent)
            assert sent.kind == CLIENT
            sent = parent(sent)
        assert sent.name.startswith("task.run")

    # Envoy's access log line for the request carries the trace, in the platform's log format.
    line = access_line(traced, "/api/v1/orchestrate")
    assert line["trace_id"] == CALLER_TRACE and line["service"] == "ossa-gateway" and line["level"] == "info"
    assert line["metadata"]["status"] == 202 and line["metadata"]["method"] == "POST"


def access_line(platform: Platform, path: str, seconds: float = 30.0) -> dict[str, Any]:
    """Envoy's access log line for `path` (Envoy flushes its log every few seconds)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = (platform.data_dir / "logs" / "envoy.log").read_text()
        for raw in text.splitlines():
            if raw[:1] == "{" and (line := json.loads(raw)).get("metadata", {}).get("path") == path:
                return dict(line)
        time.sleep(0.2)
    raise AssertionError(f"no access log line for {path}")
