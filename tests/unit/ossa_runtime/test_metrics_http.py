"""Several worker processes of one service: multiprocess mode sums them on worker 0's endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.prom import has, parse, promtool_check, value

ROOT = Path(__file__).resolve().parents[3]

WORKER = """
import sys
from ossa_runtime import metrics
n = int(sys.argv[1])
for _ in range(n):
    metrics.observe_rpc("mp", "/ossa.x.v1.X/Do", "OK", 0.004)
metrics.observe_rpc("mp", "/ossa.x.v1.X/Do", "UNAVAILABLE", 0.2)
metrics.observe_attempt("echo", "completed", 1.0)
metrics.count_task("echo", "completed")
metrics.observe_workflow("completed", 3.0)
metrics.query_logger("mp")(type("Q", (), {"query": "SELECT 1", "elapsed": 0.001})())
"""

SERVER = """
import asyncio, json
from ossa_runtime import metrics
from ossa_runtime.metrics_http import MetricsEndpoint

async def sample():
    return {metrics.QUEUE_SIZE: 5}

async def main():
    endpoint = MetricsEndpoint("mp")
    endpoint.add_gauges(metrics.SampledGauges([metrics.QUEUE_SIZE], sample))
    body, _ = await endpoint.scrape()
    print(json.dumps({"text": body.decode(), "serves": [metrics.serves_metrics(0), metrics.serves_metrics(1)]}))

asyncio.run(main())
"""


def run(code: str, env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_workers_are_summed_and_served_by_worker_zero(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    run(WORKER, env, "3")  # a worker that has exited: its counts stay (counters never go back)
    worker = subprocess.Popen([sys.executable, "-c", WORKER, "4"], cwd=ROOT, env=env)
    assert worker.wait(60) == 0
    reply = json.loads(run(SERVER, env))
    assert reply["serves"] == [True, False]
    s = parse(reply["text"])
    labels = {"service": "mp", "method": "/ossa.x.v1.X/Do"}
    assert value(s, "ossa_requests_total", status="OK", **labels) == 7
    assert value(s, "ossa_errors_total", status="UNAVAILABLE", **labels) == 2
    assert value(s, "ossa_errors_total", status="OK", **labels) == 0
    assert value(s, "ossa_request_duration_seconds_count", **labels) == 9
    assert value(s, "ossa_request_duration_seconds_bucket", le="0.005", **labels) == 7
    assert value(s, "ossa_tasks_completed_total", capability="echo", outcome="completed") == 2
    assert value(s, "ossa_task_duration_seconds_sum", capability="echo") == 2.0
    assert value(s, "ossa_workflow_completion_time_count", status="completed") == 2
    assert value(s, "ossa_workflow_completion_time_sum", status="completed") == 6.0
    assert value(s, "ossa_db_query_duration_seconds_count", service="mp", operation="select") == 2
    assert value(s, "ossa_queue_size") == 5  # sampled gauges join the summed metrics
    assert not has(s, "process_cpu_seconds_total")  # one process's numbers would mislead here
    promtool_check("metrics", stdin=reply["text"])


def test_without_the_directory_every_process_serves_its_own() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    reply = json.loads(run(SERVER, env))
    assert reply["serves"] == [True, True]
    assert "process_cpu_seconds_total" in reply["text"]


FORKS = """
import os, sys
from ossa_runtime import metrics
metrics.REQUESTS.labels("mp", "/ossa.x.v1.X/Do", "OK").inc()
child = os.fork()
if child == 0:
    metrics.REQUESTS.labels("mp", "/ossa.x.v1.X/Do", "OK").inc()
    os._exit(0)
os.waitpid(child, 0)
print(os.getpid(), child)
"""


def test_a_forked_process_counts_in_its_own_file(tmp_path: Path) -> None:
    """The pid that names a worker's file is kept in memory (no getpid() per update): a fork
    still moves the child to a file of its own, and the sum is right."""
    directory = tmp_path / "metrics"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    parent, child = run(FORKS, env).split()
    assert {p.name for p in directory.iterdir()} == {f"counter_{parent}.db", f"counter_{child}.db"}
    reply = json.loads(run(SERVER, env))
    s = parse(reply["text"])
    assert value(s, "ossa_requests_total", status="OK", service="mp", method="/ossa.x.v1.X/Do") == 2
