"""Section 6 of bench_orchestrator.py: one-step executions run by real `ossa agent serve --handler echo`
processes, started over REST, over gRPC with the generated stubs (one StartExecution per start),
with the SDK's `Client.start` (whose concurrent starts share StartExecutions calls: ossa_sdk.starts),
and in explicit batches (StartExecutions), each row with its tasks/s against Celery's of the same
run and what each task cost the servers.

Per row: a fresh published one-step workflow (the agents' capability); its executions are started
as fast as the load generator goes (benchmarks/loadgen.py); completion is read from PostgreSQL
(benchmarks/pgstats.py), not from the API: one count query every 0.25 s while waiting, then each
execution's completed_at once at the end. tasks/s = completed / (first start sent -> last
completed_at); latency = each execution's start sent -> its completed_at (the same yardstick as
Celery's sent -> date_done). Cost counters are read before and after the row.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2

from benchmarks import auth
from benchmarks.agents_cli import CliAgents
from benchmarks.cpu import CpuMeter
from benchmarks.loadgen import Starts, grpc_starts, rest_starts, sdk_starts
from benchmarks.pgstats import Cost, Execution, PgObserver
from benchmarks.report import Result
from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa.orchestrator.v1 import orchestrator_pb2_grpc

SETTLE = 1.2  # seconds before each counter read: PostgreSQL backends flush their counters when idle (<= 1 s)
TARGET_ROUND_TRIPS, TARGET_CPU_MS = 4, 0.5  # issue 12, per one-step task at full load


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("6. throughput with `ossa agent serve` agents")
    group.add_argument("--no-cli", action="store_true", help="skip section 6")
    group.add_argument("--cli-tasks", type=int, default=0, help="executions per row (default: --tasks)")
    group.add_argument("--cli-agents", type=int, default=2, help="`ossa agent serve` processes (default 2)")
    group.add_argument("--cli-slots", type=int, default=16, help="slots of each agent (default 16)")
    group.add_argument("--rest-connections", type=int, default=8, help="keep-alive connections of the REST rows")
    group.add_argument("--grpc-in-flight", type=int, default=16, help="StartExecution calls in flight")
    group.add_argument("--batch-size", type=int, default=100, help="executions per StartExecutions call")
    group.add_argument("--batch-in-flight", type=int, default=4, help="batch calls in flight")
    group.add_argument("--pg-top", type=int, default=0, help="print each row's N most frequent statements")
    group.add_argument("--backlog", type=int, default=0, help="executions of a capability no agent serves, started "
                       "before the rows: every row runs with that many tasks queued ahead of its own")  # fmt: skip
    group.add_argument("--database-url", default="", help="the platform's PostgreSQL (default: --start's, "
                       "$OSSA_DATABASE_URL or the embedded one in --data-dir)")  # fmt: skip
    group.add_argument("--orchestrator-metrics", default="", help="HOST:PORT of the orchestrator's /metrics")
    group.add_argument("--redis-url", default="", help="the platform's Redis (default: $OSSA_REDIS_URL or embedded)")


@dataclass
class Servers:
    """Where section 6 finds the platform, and how its agents authenticate."""

    gateway: str
    database_url: str
    metrics: str  # the orchestrator's metrics HOST:PORT
    redis_url: str
    own_platform: bool  # started for this run: pg_stat_statements may be created in its database
    agent_env: dict[str, str]
    token_for: Callable[[str], str]
    log_dir: Path


def servers_for(args: argparse.Namespace, platform: Any, log_dir: Path) -> Servers:
    """From a platform started with --start (tests.e2e.platform.Platform), else from flags/env."""
    if platform is not None:
        from tests.e2e.agents import agent_token

        return Servers(
            gateway=platform.gateway,
            database_url=args.database_url or platform.database_url(),
            metrics=args.orchestrator_metrics or f"127.0.0.1:{platform.port('orchestrator_metrics')}",
            redis_url=args.redis_url or platform.env.get("OSSA_REDIS_URL") or f"redis://127.0.0.1:{platform.port('redis')}/0",
            own_platform=True,
            agent_env=dict(platform.env),
            token_for=lambda name: agent_token(platform, name),
            log_dir=log_dir,
        )  # fmt: skip
    from ossa_cli.postgres import EmbeddedPostgres
    from ossa_runtime.settings import Settings

    settings = Settings.from_env()
    embedded = EmbeddedPostgres.in_data_dir(Path(args.data_dir or settings.data_dir), settings.postgres_port)
    dsn = args.database_url or settings.database_url or (embedded.url() if embedded.password_path.exists() else "")
    token = os.environ.get(auth.TOKEN_ENV, "")
    return Servers(
        gateway=args.gateway,
        database_url=dsn,
        metrics=args.orchestrator_metrics or f"127.0.0.1:{settings.orchestrator_metrics_port}",
        redis_url=args.redis_url or settings.redis_url or f"redis://127.0.0.1:{settings.redis_port}/0",
        own_platform=False,
        agent_env=dict(os.environ),
        token_for=lambda _name: token,
        log_dir=log_dir,
    )


# The rows ---------------------------------------------------------------------------------------------

Load = Callable[[str, str, int], Awaitable[Starts]]  # (gateway, workflow id, n) -> starts


@dataclass
class Spec:
    name: str  # the row's name in the summary
    path: str  # how its executions are started
    goal: float  # issue 12: OSSA tasks/s >= goal x Celery's
    load: Load


def specs(args: argparse.Namespace) -> list[Spec]:
    conns, flight, size, batches = args.rest_connections, args.grpc_in_flight, args.batch_size, args.batch_in_flight

    async def rest(gateway: str, workflow_id: str, n: int) -> Starts:
        return await asyncio.to_thread(rest_starts, gateway, workflow_id, n, conns)

    async def stubs(gateway: str, workflow_id: str, n: int) -> Starts:
        return await grpc_starts(gateway, workflow_id, n, in_flight=flight)

    async def sdk(gateway: str, workflow_id: str, n: int) -> Starts:
        return await sdk_starts(gateway, workflow_id, n, in_flight=flight)

    async def batch_grpc(gateway: str, workflow_id: str, n: int) -> Starts:
        return await grpc_starts(gateway, workflow_id, n, in_flight=batches, batch=size)

    async def batch_rest(gateway: str, workflow_id: str, n: int) -> Starts:
        return await asyncio.to_thread(rest_starts, gateway, workflow_id, n, batches, size)

    return [
        Spec("REST", f"POST /api/v1/orchestrate, {conns} conns", 1.5, rest),
        Spec("gRPC stubs", f"generated stubs, StartExecution, {flight} in flight", 2.0, stubs),
        Spec("SDK gRPC", f"ossa_sdk Client.start, {flight} in flight", 2.0, sdk),
        Spec("batch start gRPC", f"gRPC StartExecutions x{size}, {batches} in flight", 2.0, batch_grpc),
        Spec("batch start REST", f"POST orchestrate:batch x{size}, {batches} conns", 2.0, batch_rest),
    ]


@dataclass
class Row:
    spec: Spec
    result: Result  # samples: start sent -> completed_at; elapsed: first start sent -> last completed_at
    starts: Starts
    completed: int = 0
    failed: int = 0
    server_latency: list[float] = field(default_factory=list)  # started_at -> completed_at, server clock
    cost: Cost | None = None
    note: str = ""  # why the row has no figures


@dataclass
class Section:
    agents: int
    slots: int
    tasks: int
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what went wrong, for the report
    statements: bool = False  # pg_stat_statements was readable
    backlog: int = 0  # tasks of another capability queued before the rows


# Running ----------------------------------------------------------------------------------------------


async def publish(gateway: str, capability: str) -> str:
    """A published one-step workflow whose step the CLI agents serve."""
    steps: list[Any] = [{"id": "echo", "capability": capability, "max_retries": 0}]
    definition = struct_pb2.Struct()
    definition.update({"steps": steps})
    async with grpc.aio.insecure_channel(gateway, interceptors=auth.interceptors()) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        created = await stub.CreateWorkflow(
            pb.CreateWorkflowRequest(name=f"bench-cli-{secrets.token_hex(4)}", version="1.0.0", definition=definition),
            timeout=10,
        )
        await stub.PublishWorkflow(pb.PublishWorkflowRequest(workflow_id=created.workflow.id), timeout=10)
        return str(created.workflow.id)


async def warm_up(servers: Servers, observer: PgObserver, agents: CliAgents, capability: str) -> str:
    """Run a few executions through the agents: they are connected and every path is warm. "" or a problem."""
    workflow_id = await publish(servers.gateway, capability)
    n = max(20, agents.count * agents.slots)
    starts = await grpc_starts(servers.gateway, workflow_id, n, in_flight=8)
    if not starts.sent:
        return f"warm-up: no execution started: {starts.errors.most_common(1)}"
    ok, bad = await observer.wait(workflow_id, len(starts.sent), timeout=90.0)
    if ok < len(starts.sent):
        dead = agents.exited()
        return f"warm-up: {ok}/{len(starts.sent)} executions completed ({bad} failed); " + "; ".join(dead)
    return ""


async def queue_backlog(gateway: str, n: int) -> int:
    """n executions of a capability nobody serves (batch starts): their tasks stay queued."""
    workflow_id = await publish(gateway, f"backlog-{secrets.token_hex(4)}")
    starts = await grpc_starts(gateway, workflow_id, n, in_flight=4, batch=500)
    return len(starts.sent)


async def run_row(spec: Spec, servers: Servers, observer: PgObserver, capability: str, n: int,
                  cpu: CpuMeter) -> Row:  # fmt: skip
    workflow_id = await publish(servers.gateway, capability)
    await asyncio.sleep(SETTLE)
    before = await observer.counters()
    with cpu.measure(f"6. {spec.name}, {n} executions"):
        starts = await spec.load(servers.gateway, workflow_id, n)
        ok, bad = 0, 0
        if starts.sent:
            ok, bad = await observer.wait(workflow_id, len(starts.sent), timeout=max(60.0, n / 20))
    row = Row(spec, Result("Throughput", spec.path, [], 0.0), starts, ok, bad)
    if starts.unavailable and not starts.sent:
        row.note = f"unavailable: {starts.unavailable}"
        return row
    await asyncio.sleep(SETTLE)
    after = await observer.counters()
    executions = await observer.executions(workflow_id)
    row.result = figures(spec, starts, executions, n)
    row.server_latency = [e.completed_at - e.started_at for e in executions if e.completed_at is not None]
    row.cost = Cost.between(before, after, ok, cpu.last.get("orchestrator"))
    return row


def figures(spec: Spec, starts: Starts, executions: list[Execution], n: int) -> Result:
    done = [e for e in executions if e.status == "completed" and e.completed_at is not None and e.id in starts.sent]
    samples = [max(0.0, e.completed_at - starts.sent[e.id]) for e in done if e.completed_at is not None]
    last = max((e.completed_at for e in done if e.completed_at is not None), default=starts.first)
    return Result("Throughput", spec.path, samples, max(0.0, last - starts.first), n - len(samples))


async def run_section(args: argparse.Namespace, servers: Servers, n: int, cpu: CpuMeter) -> Section:
    section = Section(args.cli_agents, args.cli_slots, n)
    if not servers.database_url:
        section.notes.append("skipped: the platform's database is unknown (--database-url, or --start)")
        return section
    try:
        observer = await PgObserver.connect(servers.database_url, servers.metrics, servers.redis_url,
                                            create_extension=servers.own_platform)  # fmt: skip
    except Exception as err:  # a wrong DSN or password: report it, the other sections stand
        section.notes.append(f"skipped: cannot read the platform's database: {type(err).__name__}: {err}")
        return section
    section.statements = observer.has_statements
    capability = f"cli-echo-{secrets.token_hex(4)}"
    agents = CliAgents(servers.gateway, capability, args.cli_agents, args.cli_slots, servers.log_dir,
                       servers.token_for, servers.agent_env)  # fmt: skip
    agents.start()
    cpu.own.extend(agents.pids)
    try:
        problem = await warm_up(servers, observer, agents, capability)
        if problem:
            section.notes.append(problem)
            return section
        if args.backlog:
            section.backlog = await queue_backlog(servers.gateway, args.backlog)
        for spec in specs(args):
            row = await run_row(spec, servers, observer, capability, n, cpu)
            section.rows.append(row)
            left = len(row.starts.sent) - row.completed - row.failed
            if left > 0:
                section.notes.append(f"{spec.name}: {left} executions still running when the row ended")
    finally:
        agents.stop()
        cpu.own[:] = [p for p in cpu.own if p not in agents.pids]
        await observer.close()
    return section


# Reporting ----------------------------------------------------------------------------------------------


def _ratio(rate: float, celery: float | None) -> str:
    return f"{rate / celery:.2f}x" if celery else "-"


def _verdict(rate: float, goal: float, celery: float | None) -> str:
    if not celery:
        return "no Celery figure"
    return "meets" if rate >= goal * celery else "below"


def _num(value: float | None, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if value is not None else "-"


def print_section(section: Section, celery_rate: float | None, celery_what: str, top: int) -> None:
    print(
        f"\n6. Throughput: {section.tasks} one-step executions per row, run by {section.agents} "
        f"`ossa agent serve --handler echo` processes x {section.slots} slots (agents and starts via Envoy)"
        + (f", {section.backlog} tasks of another capability queued ahead" if section.backlog else "")
    )
    for note in section.notes:
        print(f"  {note}")
    if not section.rows:
        return
    print_rates(section, celery_rate, celery_what)
    print_costs(section)
    if top:
        print_top(section, top)


def print_rates(section: Section, celery_rate: float | None, celery_what: str) -> None:
    header = (
        f"{'row':<17} {'started by':<42} {'n':>5} {'tasks/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'err':>5} {'starts s':>8} {'OSSA/Celery':>11} {'goal':>5}  verdict"
    )
    print(header)
    print("-" * len(header))
    for row in section.rows:
        r = row.result
        if row.note:
            print(f"{row.spec.name:<17} {row.spec.path:<42} {row.note}")
            continue
        print(
            f"{row.spec.name:<17} {r.path:<42} {len(r.samples):>5} {r.rate:>8.0f} {r.pct(0.5):>8.1f} "
            f"{r.pct(0.95):>8.1f} {r.pct(0.99):>8.1f} {r.errors:>5} {row.starts.took:>8.2f} "
            f"{_ratio(r.rate, celery_rate):>11} {row.spec.goal:>4.1f}x  {_verdict(r.rate, row.spec.goal, celery_rate)}"
        )
    celery = f"{celery_rate:.0f} tasks/s ({celery_what})" if celery_rate else "not measured in this run"
    print(
        f"  Celery, section 5 of this run: {celery}.\n"
        "  tasks/s = completed / (first start sent -> last completed_at). Latency = each execution's start\n"
        "  request sent (client wall clock) -> its completed_at in PostgreSQL (the completing transaction's\n"
        "  time; same machine, same clock), like Celery's sent -> date_done. err = not started or not\n"
        "  completed. 'starts s' = first start sent -> last start answered (near the elapsed time: the start\n"
        "  path is the limit). Completion is read from PostgreSQL, not the API: one count(*) over the row's\n"
        "  executions every 0.25 s on a separate connection, then each execution's completed_at once."
    )
    for row in section.rows:
        if row.note:
            continue
        errors = "; ".join(f"{text} x{k}" for text, k in row.starts.errors.most_common(2))
        server = Result("", "", row.server_latency, 0.0)
        print(
            f"  {row.spec.name}: {row.starts.requests} start requests"
            f"{f' in {row.starts.calls} gRPC calls' if row.starts.calls else ''}, {len(row.starts.sent)} started, "
            f"{row.completed} completed, {row.failed} failed; server started_at -> completed_at "
            f"p50 {server.pct(0.5):.1f} / p99 {server.pct(0.99):.1f} ms" + (f"; errors: {errors}" if errors else "")
        )


def _against(value: float | None, target: float, unit: str) -> str:
    if value is None:
        return f"<= {target:g}{unit}: -"
    return f"<= {target:g}{unit}: {'meets' if value <= target else 'above'}"


def print_costs(section: Section) -> None:
    header = (
        f"{'row':<17} {'tasks':>6} {'PG stmts':>9} {'PG xacts':>9} {'orch RT':>8} {'Redis cmds':>10} "
        f"{'orch CPU ms':>11}  target (issue 12, per one-step task at full load)"
    )
    print(f"\n6b. Cost per completed task (server counters before and after each row)\n{header}")
    print("-" * len(header))
    for row in section.rows:
        c = row.cost
        if c is None:
            continue
        rt = _against(c.round_trips, TARGET_ROUND_TRIPS, " RT")
        ms = _against(c.orchestrator_cpu_ms, TARGET_CPU_MS, " ms")
        print(
            f"{row.spec.name:<17} {c.tasks:>6} {_num(c.statements):>9} {_num(c.transactions):>9} "
            f"{_num(c.round_trips):>8} {_num(c.redis_commands):>10} {_num(c.orchestrator_cpu_ms):>11}  {rt}; {ms}"
        )
    print(
        "  Counters read 1.2 s after the last completion (PostgreSQL flushes its counters when idle), so the\n"
        "  platform's idle work in that window (sweeps, heartbeat batches) is included, amortised.\n"
        "  PG stmts = pg_stat_statements calls in the platform's database, every service, BEGIN/COMMIT and\n"
        "  pool resets included; PG xacts = pg_stat_database xact_commit + xact_rollback (an autocommit\n"
        "  statement is one); the observer's own queries are left out of both. orch RT = the orchestrator's\n"
        "  asyncpg calls (ossa_db_query_duration_seconds_count on its /metrics, all its processes): its\n"
        "  PostgreSQL round trips. Redis cmds = INFO total_commands_processed (every client; a pipeline counts\n"
        "  each command). orch CPU = utime + stime of the orchestrator processes (/proc) while the row started\n"
        "  and drained its executions (with --start only)."
    )
    if not section.statements:
        print(
            "  PG stmts '-': pg_stat_statements is not readable (the server does not preload it, or its extension\n"
            "  is not created in the database: the benchmark creates it only in a platform it started)."
        )


def print_top(section: Section, top: int) -> None:
    for row in section.rows:
        if row.cost is None or not row.cost.top:
            continue
        c = row.cost
        planning = (f"; PostgreSQL planned {_num(c.plan_ms)} and executed {_num(c.exec_ms)} ms per task"
                    if c.plan_ms else "")  # fmt: skip
        print(f"  {row.spec.name}: most frequent statements: calls per task, ms planning / executing one{planning}")
        for t in c.top[:top]:
            print(f"    {t.per_task:6.2f}  {t.plan_ms:6.3f} {t.exec_ms:6.3f}  {t.query}")


def summary_rows(section: Section, celery_rate: float) -> list[tuple[str, float, float]]:
    """(metric, OSSA, Celery) rows for the final OSSA vs Celery table."""
    shape = f"{section.agents}x{section.slots} CLI agents"
    return [
        (f"tasks/s {row.spec.name}, {shape} (goal {row.spec.goal:g}x)", row.result.rate, celery_rate)
        for row in section.rows
        if not row.note
    ]
