"""WorkSession with in-process fakes: leases still queued for a stream when it closes are handed back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from orchestrator_svc.work import Worker, WorkSession
from ossa.orchestrator.v1 import orchestrator_pb2 as pb


class FakeDispatcher:
    def __init__(self) -> None:
        self.detached = False

    async def attach(self, *args: Any) -> str:
        return "agent"

    def detach(self, agent: Any, stream: Any) -> None:
        self.detached = True

    def resize(self, agent: Any, slots: int) -> None:
        pass


class FakeBatches:
    def __init__(self) -> None:
        self.undelivered: list[tuple[list[tuple[str, int]], str]] = []

    def undeliver(self, leases: list[tuple[str, int]], agent_id: str) -> None:
        self.undelivered.append((leases, agent_id))


class FakeHub:
    def on_revoke(self, agent_id: str, callback: Any) -> Any:
        return lambda: None


async def silent() -> AsyncIterator[pb.WorkRequest]:
    if False:  # pragma: no cover - an agent that sends nothing more
        yield pb.WorkRequest()


def row(task_id: str, token: int) -> dict[str, Any]:
    return {
        "id": task_id, "execution_id": "e", "name": "s", "capability": "c", "input": {}, "fencing_token": token,
        "lease_seconds": 30, "timeout_seconds": 60, "attempt": 1, "capability_query": None,
        "lease_expires_at": None, "trace_id": "", "trace_span_id": "",
    }  # fmt: skip


async def test_leases_left_in_the_outbox_are_handed_back_when_the_stream_ends() -> None:
    dispatcher, batches = FakeDispatcher(), FakeBatches()
    worker = Worker("agent-1", "worker", ["c"], 2, batched=True)
    session = WorkSession(worker, dispatcher, batches, FakeHub())  # type: ignore[arg-type]
    stream = session.run(silent())
    first = await anext(stream)  # the empty batch that opens a batched stream
    assert first.WhichOneof("kind") == "batch" and not first.batch.assignments
    session.deliver([row("t1", 3), row("t2", 5)])  # queued, never sent
    await stream.aclose()
    assert dispatcher.detached
    assert batches.undelivered == [([("t1", 3), ("t2", 5)], "agent-1")]
