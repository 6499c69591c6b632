"""Scenarios 1-3 of the fault suite (benchmarks/faults.py), with a small load: an orchestrator process
killed with -9, PostgreSQL stopped (SIGINT) and killed (-9), Valkey killed (-9) and flushed, each
while executions run, on one platform started as `ossa up --orchestrators 2` does, with real
`ossa agent serve` agents. After each fault and quiescence, nothing is lost: every execution ended
as the workload meant, no task was completed twice, every completion an agent saw acknowledged and
every start the client saw acknowledged are in PostgreSQL, no lease is stuck, and the Redis queue
equals PostgreSQL's. The full suite (all six scenarios, more load, and the soak) is the script.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from benchmarks.faults import Options, Suite, format_row
from benchmarks.faults_rig import Rig, start_rig
from benchmarks.faults_scenarios import Scenario, select

pytestmark = pytest.mark.e2e

SMALL = Options(rate=6.0, before=2.0, after=4.0, quiesce=90.0, mirror_wait=30.0)
# The mirror check runs every 10 sweeps: every 5 s instead of 10.
FAST = {"OSSA_LEASE_SWEEP_SECONDS": "0.5"}


@pytest.fixture(scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    started = await start_rig(Path(tmp_path_factory.mktemp("faults")), agents=2, slots=4, env=FAST)
    yield started
    await started.close()


@pytest.fixture(scope="module")
def suite(rig: Rig) -> Suite:
    return Suite(rig, SMALL)


@pytest.mark.parametrize("scenario", select("1,2,3"), ids=lambda s: s.key)
async def test_nothing_is_lost(suite: Suite, scenario: Scenario) -> None:
    row = await suite.run(scenario)
    assert row.ok, "\n".join([format_row(row), *row.notes, *row.findings.all()[:20]])
    assert row.tally.started > 0 and row.tally.completed > 0, format_row(row)
    assert row.acked > 0, format_row(row)  # the agents' acknowledged completions were found and checked
