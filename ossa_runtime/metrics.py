"""Prometheus metrics: the spec's names, defined once here, with labels an operator can slice by.

    name                            type       labels                     what
    ossa_requests_total             counter    service, method, status    every RPC (REST calls via Envoy are RPCs)
    ossa_errors_total               counter    service, method, status    RPCs that ended with a status other than OK
    ossa_request_duration_seconds   histogram  service, method, status    handler time of one RPC
    ossa_tasks_completed_total      counter    capability, outcome        tasks that reached a final status:
                                                                          completed | failed
    ossa_task_duration_seconds      histogram  capability, outcome        one attempt, claim -> end: completed |
                                                                          failed | expired | cancelled
    ossa_workflow_completion_time   summary    status                     an execution's started_at -> completed_at
                                                                          in seconds: completed | failed | cancelled
    ossa_db_query_duration_seconds  histogram  service, operation         every asyncpg query: select | insert |
                                                                          update | delete | begin | commit | ...
    ossa_orchestrator_batch_size    histogram  kind                       orchestrator: items per group commit
                                                                          (start, complete, fail, renew, claim)
    ossa_agents_active              gauge      -                          registry: agents whose heartbeat key is
                                                                          alive and whose status is not offline
    ossa_workflows_running          gauge      -                          orchestrator: executions pending or running
    ossa_queue_size                 gauge      -                          orchestrator: tasks pending (queued)
    ossa_search_index_backlog       gauge      -                          search: changes (search_outbox rows) not
                                                                          yet embedded into the vector store

`service` is the component (registry, orchestrator, gateway, ...), `method` the full gRPC method
(`/ossa.registry.v1.AgentRegistryService/GetAgent`, as in the access log) and `status` the gRPC
code name (`OK`, `NOT_FOUND`, ...; CANCELLED when the caller went away, DEADLINE_EXCEEDED when its
deadline passed). A streaming RPC (lease stream, heartbeats) is one request lasting as long as the
stream. The interceptor chain records every RPC, health checks included; the orchestrator
records tasks and executions after their transaction committed; `query_logger` (installed on
every pooled connection by ossa_runtime.db) times every query.

The gauges are not counted in memory: they are read from the shared state (Redis,
PostgreSQL) by a `SampledGauges` collector right before each scrape, so they are true whichever
process answers and however many processes a service runs. Each gauge comes from the service
that owns its data only (so `sum()` never double counts). The endpoint (ossa_runtime.metrics_http)
runs on the service's own event loop, so sampling needs no thread hand-off; `run_main` turns it on
at the service's OSSA_<SERVICE>_METRICS_PORT, tests with `host.metrics.listen("127.0.0.1", 0)`.

Several worker processes of one service (`ossa up --registry-workers N` / `--orchestrators N`)
use prometheus_client's multiprocess mode: `ossa up` gives the service's workers a fresh
directory in `PROMETHEUS_MULTIPROC_DIR` (read once, when prometheus_client is imported) and a
`OSSA_WORKER_INDEX`; every worker writes its counters, histograms and summaries there, and worker
0 alone serves `/metrics` on the service's metrics port with the sum over all workers (also of
workers that exited: counters never go backwards) plus the sampled gauges. So a service is one
scrape target whatever its worker count. A service with one process keeps everything in memory
and also exports the client's process_* / python_* metrics. Run by hand with several workers,
set the same two variables (or give each worker its own OSSA_<SERVICE>_METRICS_PORT).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    Summary,
    disable_created_metrics,
    values,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger("ossa.metrics")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))
if _dir := os.environ.get(MULTIPROC_ENV):
    os.makedirs(_dir, exist_ok=True)
    # Every update of a multiprocess value asks for the pid (a system call: getpid() is not cached
    # by glibc) to notice a fork; a fork hook keeps it in memory instead (the metrics below are
    # created after this line, so they all use it).
    values.ValueClass = values.MultiProcessValue(process_identifier=lambda: _PID[0])  # type: ignore[no-untyped-call]
# `*_created` series would double the output, and nothing here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

RPC_LABELS = ("service", "method", "status")
TASK_LABELS = ("capability", "outcome")

REQUESTS = Counter("ossa_requests_total", "Total number of requests", RPC_LABELS, registry=None)
ERRORS = Counter("ossa_errors_total", "Total number of errors", RPC_LABELS, registry=None)
TASKS_COMPLETED = Counter("ossa_tasks_completed_total", "Total completed tasks", TASK_LABELS, registry=None)
REQUEST_DURATION = Histogram(
    "ossa_request_duration_seconds",
    "Request duration in seconds",
    RPC_LABELS,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=None,
)
TASK_DURATION = Histogram(
    "ossa_task_duration_seconds",
    "Task execution duration",
    TASK_LABELS,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    registry=None,
)
DB_QUERY_DURATION = Histogram(
    "ossa_db_query_duration_seconds",
    "Database query duration",
    ("service", "operation"),
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=None,
)
BATCH_SIZE = Histogram(
    "ossa_orchestrator_batch_size",
    "Items committed together in one transaction (group commit)",
    ("kind",),
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    registry=None,
)
WORKFLOW_COMPLETION = Summary(
    "ossa_workflow_completion_time", "Workflow completion time summary", ("status",), registry=None
)
DEFINED: tuple[Collector, ...] = (
    REQUESTS,
    ERRORS,
    TASKS_COMPLETED,
    REQUEST_DURATION,
    TASK_DURATION,
    DB_QUERY_DURATION,
    BATCH_SIZE,
    WORKFLOW_COMPLETION,
)

AGENTS_ACTIVE = "ossa_agents_active"
WORKFLOWS_RUNNING = "ossa_workflows_running"
QUEUE_SIZE = "ossa_queue_size"
SEARCH_INDEX_BACKLOG = "ossa_search_index_backlog"
GAUGES = {
    AGENTS_ACTIVE: "Number of active agents",
    WORKFLOWS_RUNNING: "Number of running workflows",
    QUEUE_SIZE: "Current task queue size",
    SEARCH_INDEX_BACKLOG: "Changes waiting to be indexed for search",
}


# Recording -------------------------------------------------------------------------------------


def observe_rpc(service: str, method: str, status: str, seconds: float) -> None:
    REQUESTS.labels(service, method, status).inc()
    REQUEST_DURATION.labels(service, method, status).observe(seconds)
    if status != "OK":
        ERRORS.labels(service, method, status).inc()


def observe_batch(kind: str, items: int) -> None:
    BATCH_SIZE.labels(kind).observe(items)


def observe_attempt(capability: str, outcome: str, seconds: float) -> None:
    """One task attempt ended (completed, failed, expired or cancelled) `seconds` after its claim."""
    TASK_DURATION.labels(capability, outcome).observe(max(0.0, seconds))


def count_task(capability: str, outcome: str) -> None:
    """A task reached its final status (completed or failed)."""
    TASKS_COMPLETED.labels(capability, outcome).inc()


def observe_workflow(status: str, seconds: float) -> None:
    """An execution reached a final status `seconds` after it started."""
    WORKFLOW_COMPLETION.labels(status).observe(max(0.0, seconds))


_STATEMENTS = frozenset(
    {"select", "insert", "update", "delete", "begin", "commit", "rollback", "savepoint", "release", "copy"}
    | {"create", "alter", "drop", "truncate", "set", "show", "lock", "listen", "notify"}
)
_MAIN_STATEMENT = re.compile(r"[()]|\b(?:select|insert|update|delete)\b")


@functools.lru_cache(maxsize=1024)
def sql_operation(query: str) -> str:
    """The statement's kind, a bounded label value: `select`, `update`, ... (`reset` for the pool's
    reset query on release, the main statement for a `WITH` query, `other` if unknown)."""
    text = query.lstrip().lower()
    if "pg_advisory_unlock_all" in text and "reset all" in text:
        return "reset"
    word = re.match(r"[a-z]*", text)
    first = word.group(0) if word else ""
    if first == "with":
        depth = 0
        for match in _MAIN_STATEMENT.finditer(text):
            token = match.group(0)
            depth += {"(": 1, ")": -1}.get(token, 0)
            if depth == 0 and token not in ("(", ")"):
                return token
        return "other"
    return first if first in _STATEMENTS else "other"


def query_logger(service: str) -> Callable[[Any], None]:
    """An asyncpg query logger (`Connection.add_query_logger`) feeding ossa_db_query_duration_seconds."""

    def record(query: Any) -> None:
        DB_QUERY_DURATION.labels(service, sql_operation(query.query)).observe(query.elapsed)

    return record


# Gauges read at scrape time --------------------------------------------------------------------

Sample = Callable[[], Awaitable[Mapping[str, float]]]


class SampledGauges(Collector):
    """Gauges whose values are read from shared state by `sample()` just before each scrape.

    `refresh()` runs on the service's event loop (the /metrics endpoint awaits it); a sample that
    fails or takes longer than `timeout` leaves its gauges out of that scrape rather than report
    a stale value. At most one sample runs at a time: a slow one is awaited by the next scrape.
    """

    def __init__(self, names: Sequence[str], sample: Sample, timeout: float = 2.0) -> None:
        unknown = set(names) - GAUGES.keys()
        if unknown:
            raise ValueError(f"not a sampled gauge: {sorted(unknown)}")
        self.names = tuple(names)
        self.sample = sample
        self.timeout = timeout
        self.values: dict[str, float] = {}
        self._running: asyncio.Future[Mapping[str, float]] | None = None

    async def refresh(self) -> None:
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self.sample())
        running = self._running
        done, _ = await asyncio.wait({running}, timeout=self.timeout)
        if not done:
            log.warning("metrics sample timed out", extra={"metadata": {"gauges": self.names}})
            self.values = {}
            return
        try:
            values = running.result()
        except Exception as err:  # the scrape still answers, without these gauges
            log.warning("metrics sample failed", extra={"metadata": {"gauges": self.names, "error": str(err)}})
            self.values = {}
            return
        self.values = {name: float(values[name]) for name in self.names if name in values}

    async def close(self) -> None:
        """Wait briefly for a sample in flight (it may use a pool that is about to close)."""
        if self._running is not None and not self._running.done():
            done, _ = await asyncio.wait({self._running}, timeout=self.timeout)
            if not done:
                self._running.cancel()
            await asyncio.gather(self._running, return_exceptions=True)

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(name, GAUGES[name]) for name in self.names]

    def collect(self) -> Iterable[Metric]:
        values = self.values
        return [GaugeMetricFamily(n, GAUGES[n], value=values[n]) for n in self.names if n in values]


# Exposition ------------------------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def serves_metrics(worker_index: int) -> bool:
    """Whether this process answers /metrics: in multiprocess mode only worker 0 does (for all)."""
    return worker_index == 0 or multiprocess_dir() is None


def exposition_registry() -> CollectorRegistry:
    """What one /metrics endpoint exports; services add their SampledGauges to it."""
    registry = CollectorRegistry()
    path = multiprocess_dir()
    if path is not None:
        MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]
    else:
        for collector in (*DEFINED, PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
    return registry


def render(registry: CollectorRegistry, accept: str = "") -> tuple[bytes, str]:
    """The exposition in the format the scraper asked for (Prometheus text or OpenMetrics)."""
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
