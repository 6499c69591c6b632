"""Batched dispatch over real gRPC, PostgreSQL and Redis: batched Work streams with receipts, a stale
token inside a batch, a lost acknowledgement, batch starts, and two orchestrators claiming at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import pytest

from orchestrator_svc.server import build_server as build_orchestrator
from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_runtime.settings import Settings
from registry_svc.server import build_server as build_registry
from tests.integration.orchestration import Client, Stream, fast, step, struct

pytestmark = pytest.mark.integration
Stack = tuple[Settings, list[str], str]


@pytest.fixture(scope="module")
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    """A registry and two orchestrator processes' servers on the same database and Redis."""
    registry, registry_port = await build_registry(settings, port=0)
    await registry.start()
    tuned = fast(settings, registry_port)
    hosts, targets = [], []
    for _ in range(2):
        host, port = await build_orchestrator(tuned, port=0)
        await host.start()
        hosts.append(host)
        targets.append(f"127.0.0.1:{port}")
    yield tuned, targets, f"127.0.0.1:{registry_port}"
    for host in hosts:
        await host.stop()
    await registry.stop()


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[Client]:
    c = Client(stack[1][0], stack[2])
    yield c
    await c.close()


class Batched:
    """A batched Work stream: reports go out on the stream, receipts and assignments come back in batches."""

    def __init__(self, client: Client, agent_id: str, slots: int) -> None:
        self.call = client.orch.Work()
        self.agent_id, self.slots = agent_id, slots
        self.stream = Stream(self.call)
        self.assignments: asyncio.Queue[pb.Assignment] = asyncio.Queue()
        self.receipts: dict[tuple[str, int, int], pb.Receipt] = {}
        self.messages = 0

    async def open(self) -> Batched:
        await self.call.write(pb.WorkRequest(agent_id=self.agent_id, slots=self.slots, batched=True))
        return self

    async def pump(self, seconds: float = 10.0) -> pb.WorkBatch:
        message = await self.stream.next(seconds)
        assert message.WhichOneof("kind") == "batch", message
        self.messages += 1
        for a in message.batch.assignments:
            self.assignments.put_nowait(a)
        for r in message.batch.receipts:
            self.receipts[(r.task_id, r.fencing_token, r.kind)] = r
        return message.batch

    async def take(self, n: int, seconds: float = 10.0) -> list[pb.Assignment]:
        while self.assignments.qsize() < n:
            await self.pump(seconds)
        return [self.assignments.get_nowait() for _ in range(n)]

    async def receipt(self, task_id: str, token: int, kind: int, seconds: float = 10.0) -> pb.Receipt:
        while (task_id, token, kind) not in self.receipts:
            await self.pump(seconds)
        return self.receipts[(task_id, token, kind)]

    async def close(self) -> None:
        self.call.cancel()
        await asyncio.gather(self.stream.reader, return_exceptions=True)


def completion(a: pb.Assignment, token: int | None = None) -> pb.CompleteTaskRequest:
    return pb.CompleteTaskRequest(
        task_id=a.task_id, fencing_token=a.fencing_token if token is None else token, output=struct({"n": a.step_id})
    )


async def db(settings: Settings) -> asyncpg.Connection:
    return await asyncpg.connect(settings.database_url)


async def test_batched_stream_reports_and_a_stale_token_fails_alone(client: Client, stack: Stack) -> None:
    settings = stack[0]
    agent = await client.agent(["batch-echo"])
    workflow = await client.published([step(f"s{i}", "batch-echo") for i in range(4)])
    execution_id = await client.start(workflow.id)
    stream = await Batched(client, agent, slots=4).open()
    try:
        leased = await stream.take(4)
        assert stream.messages < 4  # several assignments travel in one message
        good, stale = leased[:3], leased[3]
        request = pb.WorkRequest(
            completions=[completion(a) for a in good] + [completion(stale, stale.fencing_token + 7)]
        )
        await stream.call.write(request)
        for a in good:
            receipt = await stream.receipt(a.task_id, a.fencing_token, pb.RECEIPT_KIND_COMPLETION)
            assert receipt.code == 0, receipt.error
            assert receipt.execution_status == pb.ExecutionStatus.running
        bad = await stream.receipt(stale.task_id, stale.fencing_token + 7, pb.RECEIPT_KIND_COMPLETION)
        assert bad.code == grpc.StatusCode.FAILED_PRECONDITION.value[0] and "late result" in bad.error
        # The stale row was recorded for itself; its lease is still current and completes normally.
        await stream.call.write(pb.WorkRequest(completions=[completion(stale)]))
        last = await stream.receipt(stale.task_id, stale.fencing_token, pb.RECEIPT_KIND_COMPLETION)
        assert last.code == 0 and last.execution_status == pb.ExecutionStatus.completed
    finally:
        await stream.close()
    conn = await db(settings)
    try:
        late = await conn.fetch(
            "SELECT task_id::text AS task_id, fencing_token, kind FROM late_results WHERE task_id = ANY($1::uuid[])",
            [a.task_id for a in leased],
        )
        attempts = await conn.fetch(
            "SELECT outcome, late_results FROM task_attempts WHERE task_id = ANY($1::uuid[])",
            [a.task_id for a in leased],
        )
    finally:
        await conn.close()
    assert [(r["task_id"], r["fencing_token"], r["kind"]) for r in late] == [
        (stale.task_id, stale.fencing_token + 7, "complete")
    ]
    assert sorted(r["outcome"] for r in attempts) == ["completed"] * 4
    assert (await client.execution(execution_id)).status == pb.ExecutionStatus.completed


async def test_renewals_and_failures_on_the_stream(client: Client) -> None:
    agent = await client.agent(["batch-renew"])
    workflow = await client.published([step("a", "batch-renew", max_retries=1), step("b", "batch-renew")])
    await client.start(workflow.id)
    stream = await Batched(client, agent, slots=2).open()
    try:
        a, b = sorted(await stream.take(2), key=lambda x: x.step_id)
        await stream.call.write(
            pb.WorkRequest(
                renewals=[pb.RenewLeaseRequest(task_id=b.task_id, fencing_token=b.fencing_token)],
                failures=[
                    pb.FailTaskRequest(task_id=a.task_id, fencing_token=a.fencing_token, error="x", retryable=True)
                ],
            )
        )
        renewed = await stream.receipt(b.task_id, b.fencing_token, pb.RECEIPT_KIND_RENEWAL)
        assert renewed.code == 0 and renewed.lease_expires_at.seconds > 0
        failed = await stream.receipt(a.task_id, a.fencing_token, pb.RECEIPT_KIND_FAILURE)
        assert failed.code == 0 and failed.will_retry
        (again,) = await stream.take(1)  # retried after its backoff, with a new token
        assert again.task_id == a.task_id and again.fencing_token > a.fencing_token and again.attempt == 2
        bad = pb.RenewLeaseRequest(task_id="not-a-uuid", fencing_token=1)
        await stream.call.write(pb.WorkRequest(renewals=[bad]))
        invalid = await stream.receipt("not-a-uuid", 1, pb.RECEIPT_KIND_RENEWAL)
        assert invalid.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and "task_id" in invalid.error
    finally:
        await stream.close()


async def test_an_acknowledgement_lost_after_commit_is_answered_again(client: Client, stack: Stack) -> None:
    """The agent sends its completion and loses the stream before the receipt (the orchestrator crashed
    between COMMIT and the acknowledgement): resending it is acknowledged, never applied twice."""
    agent = await client.agent(["batch-lost"])
    workflow = await client.published([step("a", "batch-lost")])
    execution_id = await client.start(workflow.id)
    stream = await Batched(client, agent, slots=1).open()
    (a,) = await stream.take(1)
    await stream.call.write(pb.WorkRequest(completions=[completion(a)]))
    await client.wait_status(execution_id, "completed")  # committed ...
    await stream.close()  # ... and the stream is gone without its receipt ever being read
    assert (a.task_id, a.fencing_token, pb.RECEIPT_KIND_COMPLETION) not in stream.receipts
    for target in stack[1]:  # the retry may reach any orchestrator process
        other = Client(target, stack[2])
        try:
            reply = await other.orch.CompleteTask(completion(a))
        finally:
            await other.close()
        assert reply.execution_status == pb.ExecutionStatus.completed
    conn = await db(stack[0])
    try:
        late = await conn.fetchval("SELECT count(*) FROM late_results WHERE task_id = $1", a.task_id)
        attempts = await conn.fetch("SELECT outcome FROM task_attempts WHERE task_id = $1", a.task_id)
    finally:
        await conn.close()
    assert late == 0 and [r["outcome"] for r in attempts] == ["completed"]


async def test_batch_start_with_idempotency_keys_all_or_nothing(client: Client, stack: Stack) -> None:
    workflow = await client.published([step("a", "batch-start-nobody")])

    def item(key: str = "", **fields: Any) -> pb.StartExecutionRequest:
        return pb.StartExecutionRequest(
            workflow_id=workflow.id, idempotency_key=key, context=struct({"k": key}), **fields
        )

    call = client.orch.StartExecutions(pb.StartExecutionsRequest(executions=[item("k1"), item("k2"), item()]))
    first = await call
    assert "x-http-code" not in dict(await call.initial_metadata())  # the REST status comes from the route
    assert len({e.execution_id for e in first.executions}) == 3
    again = await client.orch.StartExecutions(pb.StartExecutionsRequest(executions=[item("k2"), item("k1")]))
    assert [e.execution_id for e in again.executions] == [
        first.executions[1].execution_id,
        first.executions[0].execution_id,
    ]
    missing = pb.StartExecutionRequest(workflow_id="00000000-0000-4000-8000-000000000000")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.orch.StartExecutions(pb.StartExecutionsRequest(executions=[item("k3"), missing]))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "executions[1]" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.orch.StartExecutions(pb.StartExecutionsRequest(executions=[item("k4"), item(priority=11)]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "executions[1].priority" in (
        err.value.details() or ""
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.orch.StartExecutions(pb.StartExecutionsRequest())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    conn = await db(stack[0])
    try:
        stored = await conn.fetchval("SELECT count(*) FROM executions WHERE idempotency_key IN ('k3', 'k4')")
        await conn.execute("UPDATE tasks SET status = 'failed' WHERE capability = 'batch-start-nobody'")
    finally:
        await conn.close()
    assert stored == 0


async def test_two_orchestrators_batching_claims_attempt_every_task_once(client: Client, stack: Stack) -> None:
    settings, targets, registry = stack
    capability, total, slots = "batch-race", 240, 8
    workflow = await client.published([step("a", capability, max_retries=0)])
    clients = [Client(t, registry) for t in targets]
    agents = [await client.agent([capability]) for _ in range(4)]
    streams = [await Batched(clients[i % 2], agent, slots).open() for i, agent in enumerate(agents)]
    held: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    done: list[str] = []

    async def serve(stream: Batched) -> None:
        while True:
            (a,) = await stream.take(1, seconds=30)
            held[stream.agent_id] += 1
            peak[stream.agent_id] = max(peak[stream.agent_id], held[stream.agent_id])
            await stream.call.write(pb.WorkRequest(completions=[completion(a)]))
            receipt = await stream.receipt(a.task_id, a.fencing_token, pb.RECEIPT_KIND_COMPLETION, seconds=30)
            assert receipt.code == 0, receipt.error
            held[stream.agent_id] -= 1
            done.append(a.task_id)

    servers = [asyncio.create_task(serve(s)) for s in streams]
    try:
        ids = await asyncio.gather(*(clients[i % 2].start(workflow.id) for i in range(total)))
        for _ in range(600):
            if len(done) >= total:
                break
            await asyncio.sleep(0.05)
    finally:
        for task in servers:
            task.cancel()
        await asyncio.gather(*servers, return_exceptions=True)
        for stream in streams:
            await stream.close()
        for c in clients:
            await c.close()
    assert len(done) == total and len(set(done)) == total
    assert max(peak.values()) <= slots
    conn = await db(settings)
    try:
        attempts = await conn.fetch(
            """SELECT t.id, count(a.*) AS n FROM tasks t JOIN executions e ON e.id = t.execution_id
                 LEFT JOIN task_attempts a ON a.task_id = t.id
                WHERE e.id = ANY($1::uuid[]) GROUP BY t.id""",
            ids,
        )
        statuses = await conn.fetch(
            "SELECT status, count(*) AS n FROM executions WHERE id = ANY($1::uuid[]) GROUP BY 1", ids
        )
    finally:
        await conn.close()
    assert len(attempts) == total and {r["n"] for r in attempts} == {1}
    assert {r["status"]: r["n"] for r in statuses} == {"completed": total}


async def test_leases_never_sent_go_back_to_the_queue_as_if_never_leased(client: Client, stack: Stack) -> None:
    """A stream that closes with leases still in its outbox hands them back (LeaseStore.undeliver): the
    task is queued again with its attempt forgotten, and the spent fencing token is never valid again."""
    from orchestrator_svc.leases import Backoff, LeaseStore
    from ossa_runtime.db import create_pool

    agent = await client.agent(["batch-unsent"])
    workflow = await client.published([step("a", "batch-unsent", max_retries=0)])
    execution_id = await client.start(workflow.id)
    stream = await Batched(client, agent, slots=1).open()
    (first,) = await stream.take(1)
    await stream.close()
    pool = await create_pool(stack[0])
    try:
        (back,) = await LeaseStore(pool, Backoff(0.05, 0.2)).undeliver([(first.task_id, first.fencing_token)])
        row = await pool.fetchrow(
            "SELECT status, attempt, fencing_token, agent_id FROM tasks WHERE id = $1", first.task_id
        )
        attempts = await pool.fetchval("SELECT count(*) FROM task_attempts WHERE task_id = $1", first.task_id)
    finally:
        await pool.close()
    assert back["id"] == first.task_id and back["capability"] == "batch-unsent"
    assert (row["status"], row["attempt"], row["agent_id"]) == ("pending", 0, None)
    assert row["fencing_token"] == first.fencing_token and attempts == 0
    stream = await Batched(client, agent, slots=1).open()
    try:
        (again,) = await stream.take(1)  # max_retries=0, yet it runs: the unsent lease was no attempt
        assert again.task_id == first.task_id and again.attempt == 1
        assert again.fencing_token == first.fencing_token + 1
        await stream.call.write(pb.WorkRequest(completions=[completion(first), completion(again)]))
        stale = await stream.receipt(first.task_id, first.fencing_token, pb.RECEIPT_KIND_COMPLETION)
        done = await stream.receipt(again.task_id, again.fencing_token, pb.RECEIPT_KIND_COMPLETION)
        assert stale.code == grpc.StatusCode.FAILED_PRECONDITION.value[0] and done.code == 0
    finally:
        await stream.close()
    assert (await client.execution(execution_id)).status == pb.ExecutionStatus.completed
