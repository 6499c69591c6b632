"""`ossa run --wait`'s progress lines and bar, fed WatchExecution messages by hand."""

from __future__ import annotations

import io

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_cli.progress import Progress

TS = pb.TaskStatus


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def message(status: int, *tasks: pb.Task) -> pb.WatchExecutionResponse:
    return pb.WatchExecutionResponse(execution=pb.Execution(id="e", status=status), tasks=list(tasks))


def task(status: int, attempt: int = 0, agent_id: str = "", error: str = "", name: str = "a") -> pb.Task:
    return pb.Task(id=f"t-{name}", name=name, status=status, attempt=attempt, agent_id=agent_id, error=error)


def test_one_line_per_step_event_without_a_terminal() -> None:
    out = io.StringIO()
    progress = Progress(steps=2, stream=out, name_of={"ag": "echo-1"}.get, tty=False)
    progress.update(message(pb.ExecutionStatus.pending, task(TS.pending)))
    progress.update(message(pb.ExecutionStatus.running, task(TS.assigned, 1, "ag")))
    progress.update(message(pb.ExecutionStatus.running, task(TS.running, 1, "ag")))  # a renewal: no line
    progress.update(message(pb.ExecutionStatus.running, task(TS.pending, 1, "ag", "boom")))  # a retry
    progress.update(message(pb.ExecutionStatus.running, task(TS.assigned, 2, "other")))
    progress.update(message(pb.ExecutionStatus.running, task(TS.completed, 2, "other"), task(TS.pending, name="b")))
    progress.update(message(pb.ExecutionStatus.failed, task(TS.failed, 1, "ag", "bad", name="b")))
    progress.finish()
    assert out.getvalue().splitlines() == [
        "a: queued",
        "a: leased to echo-1 (ag), attempt 1",
        "a: attempt 1 failed (boom); queued again",
        "a: leased to other, attempt 2",
        "a: done",
        "b: queued",
        "b: leased to echo-1 (ag), attempt 1",
        "b: failed: bad",
    ]


def test_a_terminal_gets_a_bar_under_the_lines() -> None:
    out = Tty()
    ticks = iter([0.0, 1.5, 3.0, 3.0])
    progress = Progress(steps=4, stream=out, clock=lambda: next(ticks))
    progress.update(message(pb.ExecutionStatus.running, task(TS.completed, 1, "ag")))
    assert out.getvalue().endswith("\r\x1b[K[######------------------] 1/4 steps  running  1.5s")
    progress.finish()
    assert out.getvalue().endswith("1/4 steps  running  3.0s\n")
    assert "\r\x1b[Ka: done\n" in out.getvalue()


def test_the_bar_counts_tasks_seen_when_the_step_count_is_unknown() -> None:
    progress = Progress(steps=0, stream=io.StringIO(), tty=False)
    progress.update(message(pb.ExecutionStatus.running, task(TS.completed, 1), task(TS.pending, name="b")))
    assert "1/2 steps" in progress.bar()
