"""The renewal loop: one per agent, every due renewal at once, each receipt handled on its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_sdk.receipts import RENEWAL, Kind, Request
from ossa_sdk.renewals import Renewals
from ossa_sdk.tasks import Run
from tests.unit.ossa_sdk.fakes import eventually


class Server:
    """The renewals' `send`: records each round's requests; the test answers them."""

    def __init__(self) -> None:
        self.rounds: list[list[pb.RenewLeaseRequest]] = []
        self.waiting: dict[str, asyncio.Future[pb.Receipt]] = {}
        self.lost: list[tuple[str, str]] = []
        self._current: list[pb.RenewLeaseRequest] | None = None

    async def _receipt(self, future: asyncio.Future[pb.Receipt]) -> pb.Receipt:
        return await future

    def send(self, kind: Kind, request: Request, timeout: float) -> asyncio.Future[pb.Receipt]:
        assert kind == RENEWAL and isinstance(request, pb.RenewLeaseRequest) and timeout >= 1.0
        if self._current is None:  # a new round: whatever is sent before the loop yields
            self._current = []
            self.rounds.append(self._current)
            asyncio.get_running_loop().call_soon(self._end_round)
        self._current.append(request)
        future: asyncio.Future[pb.Receipt] = asyncio.get_running_loop().create_future()
        self.waiting[request.task_id] = future
        return future

    def _end_round(self) -> None:
        self._current = None

    def answer(self, task_id: str, code: grpc.StatusCode = grpc.StatusCode.OK, error: str = "") -> None:
        future = self.waiting.pop(task_id)
        future.set_result(pb.Receipt(task_id=task_id, kind=RENEWAL, code=code.value[0], error=error))

    def on_lost(self, run: Run, why: str) -> None:
        self.lost.append((run.task_id, why))


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    yield Server()


@pytest.fixture
async def renewals(server: Server) -> AsyncIterator[Renewals]:
    loop = Renewals(server.send, server.on_lost)
    yield loop
    await loop.stop()


def run(task_id: str, lease_seconds: float = 0.3) -> Run:
    return Run(task_id, 1, {}, lease_seconds, 0)


async def test_runs_due_together_renew_in_one_round(server: Server, renewals: Renewals) -> None:
    runs = [run(f"t{n}") for n in range(16)]
    for r in runs:
        renewals.add(r)
    await eventually(lambda: server.rounds, "a round")
    assert [[r.task_id for r in rnd] for rnd in server.rounds] == [[f"t{n}" for n in range(16)]]
    assert renewals.rounds == 1
    for n in range(16):
        server.answer(f"t{n}")
    await eventually(lambda: all(r.renewals == 1 for r in runs), "16 accepted renewals")
    await eventually(lambda: len(server.rounds) == 2, "the next round")
    assert len(server.rounds[1]) == 16  # still together


async def test_a_rejected_renewal_reports_the_lease_lost_once(server: Server, renewals: Renewals) -> None:
    kept, gone = run("kept"), run("gone")
    renewals.add(kept)
    renewals.add(gone)
    await eventually(lambda: len(server.waiting) == 2, "two renewals")
    server.answer("gone", grpc.StatusCode.FAILED_PRECONDITION, "stale fencing token")
    server.answer("kept")
    await eventually(lambda: server.lost, "the lost lease")
    assert server.lost == [("gone", "lease lost: FAILED_PRECONDITION: stale fencing token")]
    assert gone not in renewals and kept in renewals
    await eventually(lambda: "kept" in server.waiting, "kept renewed again")
    assert "gone" not in server.waiting and kept.renewals == 1 and gone.renewals == 0


async def test_a_transient_failure_is_retried(server: Server, renewals: Renewals) -> None:
    r = run("t")
    renewals.add(r)
    await eventually(lambda: server.waiting, "a renewal")
    server.answer("t", grpc.StatusCode.UNAVAILABLE, "restarting")
    await eventually(lambda: server.waiting, "the retry")
    server.answer("t")
    await eventually(lambda: r.renewals == 1, "an accepted renewal")
    assert server.lost == [] and len(server.rounds) == 2


async def test_one_renewal_in_flight_per_run_and_none_after_discard(server: Server, renewals: Renewals) -> None:
    r = run("t", lease_seconds=0.03)
    renewals.add(r)
    await eventually(lambda: server.waiting, "a renewal")
    await asyncio.sleep(0.05)  # several periods: still only the one unanswered renewal
    assert len(server.rounds) == 1
    renewals.discard(r)
    server.answer("t", grpc.StatusCode.FAILED_PRECONDITION)  # after the result was reported: ignored
    await asyncio.sleep(0.05)
    assert server.lost == [] and r.renewals == 0 and len(server.rounds) == 1


async def test_stop_cancels_renewals_in_flight(server: Server, renewals: Renewals) -> None:
    renewals.add(run("t"))
    await eventually(lambda: server.waiting, "a renewal")
    await renewals.stop()
    assert server.waiting["t"].cancelled()
