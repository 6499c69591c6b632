"""WatchExecution and GetExecution's long poll on two real orchestrators sharing one database and Redis.

The watcher sits on one orchestrator while the execution is started, leased, completed or
cancelled through the other: the change reaches it through the Redis batch message. The periodic
re-read is pushed out of reach (REREAD_SECONDS) so only that message can deliver it in time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from orchestrator_svc import watch
from orchestrator_svc.events import EventHub
from orchestrator_svc.server import build_server as build_orchestrator
from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_runtime.settings import Settings
from registry_svc.server import build_server as build_registry
from tests.integration.orchestration import Client, fast, step, to_dict

pytestmark = pytest.mark.integration
UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
async def pair(settings: Settings) -> AsyncIterator[tuple[Client, Client]]:
    """Clients of two orchestrator processes' worth of servers (one database, one Redis)."""
    registry, registry_port = await build_registry(settings, port=0)
    await registry.start()
    tuned = fast(settings, registry_port)
    first, first_port = await build_orchestrator(tuned, port=0)
    second, second_port = await build_orchestrator(tuned, port=0)
    await first.start()
    await second.start()
    clients = (
        Client(f"127.0.0.1:{first_port}", f"127.0.0.1:{registry_port}"),
        Client(f"127.0.0.1:{second_port}", f"127.0.0.1:{registry_port}"),
    )
    yield clients
    for c in clients:
        await c.close()
    await second.stop()
    await first.stop()
    await registry.stop()


@pytest.fixture(autouse=True)
def no_periodic_reread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch, "REREAD_SECONDS", 60.0)


class Watch:
    """Reads a WatchExecution stream in the background."""

    def __init__(self, client: Client, execution_id: str) -> None:
        self.call = client.orch.WatchExecution(pb.WatchExecutionRequest(execution_id=execution_id))
        self.inbox: asyncio.Queue[pb.WatchExecutionResponse | BaseException | None] = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.call:
                self.inbox.put_nowait(message)
        except BaseException as err:  # surfaced by next()
            self.inbox.put_nowait(err)
        else:
            self.inbox.put_nowait(None)  # the stream ended

    async def next(self, seconds: float = 10.0) -> pb.WatchExecutionResponse | None:
        message = await asyncio.wait_for(self.inbox.get(), seconds)
        if isinstance(message, BaseException):
            raise message
        return message

    async def rest(self, seconds: float = 20.0) -> list[pb.WatchExecutionResponse]:
        """Every message until the stream ends."""
        out = []
        while (message := await self.next(seconds)) is not None:
            out.append(message)
        return out


def status(message: pb.WatchExecutionResponse) -> str:
    return pb.ExecutionStatus.Value.Name(message.execution.status)


async def test_changes_committed_by_one_orchestrator_reach_a_watcher_on_the_other(pair: tuple[Client, Client]) -> None:
    one, other = pair
    workflow = await one.published([step("a", "watch-two"), step("b", "watch-two", depends_on=["a"])])
    execution_id = await one.start(workflow.id, context={"n": 1})
    watcher = Watch(other, execution_id)
    first = await watcher.next()
    assert first is not None and first.initial and status(first) == "pending"
    assert [(t.name, pb.TaskStatus.Value.Name(t.status)) for t in first.tasks] == [("a", "pending")]
    agent = await one.agent(["watch-two"])
    async with one.work(agent) as stream:
        leased = await stream.assignment()
        running = await watcher.next()  # the lease (and the execution running) seen on the other process
        assert running is not None and status(running) == "running" and not running.initial
        assert [(t.name, pb.TaskStatus.Value.Name(t.status)) for t in running.tasks] == [("a", "assigned")]
        await one.complete(leased, {"step": "a"})
        await one.complete(await stream.assignment(), {"step": "b"})
        rest = await watcher.rest()
    assert rest and status(rest[-1]) == "completed"  # the stream ends after the final status
    assert all(status(m) == "running" for m in rest[:-1])
    assert to_dict(rest[-1].execution.results) == {"a": {"step": "a"}, "b": {"step": "b"}}
    history: dict[str, list[str]] = {}
    for message in [running, *rest]:
        for t in message.tasks:
            history.setdefault(t.name, []).append(pb.TaskStatus.Value.Name(t.status))
    assert history["a"][-1] == "completed" and history["b"][-1] == "completed"
    for statuses in history.values():  # every message moves a task forward, never repeats a state
        order = ["pending", "assigned", "running", "completed"]
        assert [order.index(s) for s in statuses] == sorted({order.index(s) for s in statuses})


async def test_a_cancel_on_the_other_orchestrator_ends_the_stream(pair: tuple[Client, Client]) -> None:
    one, other = pair
    workflow = await one.published([step("idle", "watch-nobody")])
    execution_id = await one.start(workflow.id)
    watcher = Watch(other, execution_id)
    assert (await watcher.next()) is not None
    await one.orch.CancelExecution(pb.CancelExecutionRequest(execution_id=execution_id))
    rest = await watcher.rest()
    assert [status(m) for m in rest] == ["cancelled"]
    assert [pb.TaskStatus.Value.Name(t.status) for t in rest[0].tasks] == ["failed"]


async def test_watching_a_finished_execution_sends_its_state_and_ends(pair: tuple[Client, Client]) -> None:
    one, _ = pair
    workflow = await one.published([step("done", "watch-nobody")])
    execution_id = await one.start(workflow.id)
    await one.orch.CancelExecution(pb.CancelExecutionRequest(execution_id=execution_id))
    messages = await Watch(one, execution_id).rest()
    assert len(messages) == 1 and messages[0].initial and status(messages[0]) == "cancelled"


@pytest.mark.parametrize(
    ("execution_id", "code", "needle"),
    [
        (UNKNOWN, grpc.StatusCode.NOT_FOUND, f"execution {UNKNOWN} not found"),
        ("nope", grpc.StatusCode.INVALID_ARGUMENT, "execution_id"),
        ("", grpc.StatusCode.INVALID_ARGUMENT, "execution_id"),
    ],
)
async def test_bad_or_unknown_ids(pair: tuple[Client, Client], execution_id: str, code: grpc.StatusCode,
                                  needle: str) -> None:  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in pair[0].orch.WatchExecution(pb.WatchExecutionRequest(execution_id=execution_id)):
            pass
    assert err.value.code() == code and needle in (err.value.details() or "")


async def test_long_poll_returns_at_a_change_committed_elsewhere(pair: tuple[Client, Client]) -> None:
    one, other = pair
    workflow = await one.published([step("idle", "watch-nobody")])
    execution_id = await one.start(workflow.id)
    pending = pb.ExecutionStatus.pending
    poll = asyncio.ensure_future(
        other.orch.GetExecution(pb.GetExecutionRequest(execution_id=execution_id, wait="30s", status_not=pending))
    )
    await asyncio.sleep(0.3)
    assert not poll.done()
    await one.orch.CancelExecution(pb.CancelExecutionRequest(execution_id=execution_id))
    reply = await asyncio.wait_for(poll, 10)
    assert reply.execution.status == pb.ExecutionStatus.Value.Value("cancelled")
    # The reference is the status the client has: a change it has not seen returns at once.
    again = await other.orch.GetExecution(
        pb.GetExecutionRequest(execution_id=execution_id, wait="30s", status_not=pending)
    )
    assert again.execution.status == pb.ExecutionStatus.Value.Value("cancelled")


async def test_long_poll_times_out_with_the_unchanged_state(pair: tuple[Client, Client]) -> None:
    one, _ = pair
    workflow = await one.published([step("idle", "watch-nobody")])
    execution_id = await one.start(workflow.id)
    call = one.orch.GetExecution(pb.GetExecutionRequest(execution_id=execution_id, wait="300ms"))
    reply = await call
    assert reply.execution.status == pb.ExecutionStatus.Value.Value("pending")
    assert ("cache-control", "no-store") in tuple(await call.initial_metadata())


@pytest.mark.parametrize(
    ("wait", "status_not", "field"),
    [
        ("forever", pb.ExecutionStatus.execution_status_unspecified, "wait"),
        ("61s", pb.ExecutionStatus.execution_status_unspecified, "wait"),
        ("-1s", pb.ExecutionStatus.execution_status_unspecified, "wait"),
        ("", pb.ExecutionStatus.running, "wait"),
    ],
)
async def test_long_poll_rejects_bad_waits(pair: tuple[Client, Client], wait: str, status_not: pb.ExecutionStatus.Value,
                                           field: str) -> None:  # fmt: skip
    request = pb.GetExecutionRequest(execution_id=UNKNOWN, wait=wait, status_not=status_not)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pair[0].orch.GetExecution(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in (err.value.details() or "")


async def test_without_notifications_the_periodic_reread_still_delivers(
    pair: tuple[Client, Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every notification lost (as if pub/sub dropped them): the watcher's re-read finds the change."""
    monkeypatch.setattr(watch, "REREAD_SECONDS", 0.2)
    monkeypatch.setattr(EventHub, "changed_local", lambda self, ids: None)
    one, other = pair
    workflow = await one.published([step("idle", "watch-nobody")])
    execution_id = await one.start(workflow.id)
    watcher = Watch(other, execution_id)
    assert (await watcher.next()) is not None
    await one.orch.CancelExecution(pb.CancelExecutionRequest(execution_id=execution_id))
    assert [status(m) for m in await watcher.rest()] == ["cancelled"]
