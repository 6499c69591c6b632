"""Agent registration at the seed's write rate (issue 15 point 2), for benchmarks/bench_gateway.py.

Rows, all through Envoy (POST /api/v1/agents, keep-alive HTTP/1.1 clients on this machine):
- ceiling (first, on a quiet platform): the same load generator against a trivial call through
  Envoy to one Python process (GET /api/v1/health), measured in the same run: what this box gives
  any request today;
- alone: one registration in flight, no indexing backlog (the spec's latency target);
- burst: `duration` seconds of concurrent registrations: req/s against the 1,000 target, and the
  registrations' p50/p95/p99 during the burst.
Then the search indexer's backlog, read from the search service's Prometheus gauge
(`ossa_search_index_backlog`) every 0.25 s: its peak and how long it took to drain to 0 after the
burst (indexing runs on low-priority threads, so it mostly waits for the burst to end).

The load generator is asyncio over raw keep-alive HTTP/1.1 connections (a few lines of parsing, no
http.client, no threads), `processes` x `conns` of them: it shares the two cores with what it
measures, so it must cost far less per request than the path under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import multiprocessing as mp
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks import auth
from benchmarks.cpu import CpuMeter
from benchmarks.report import Result

BACKLOG = "ossa_search_index_backlog"
REGISTRATION_TARGET_MS = (10, 25, 50)  # the spec's Agent Registration p50/p95/p99
WRITE_TARGET_RPS = 1_000


def registration_body() -> bytes:
    name = f"bench-{secrets.token_hex(6)}"
    return json.dumps({"name": name, "type": "worker", "version": "1.0.0", "capabilities": ["bench"]}).encode()


def _request(method: str, host: str, path: str, body: bytes | None) -> bytes:
    head = [f"{method} {path} HTTP/1.1", f"host: {host}"]
    head += [f"{k}: {v}" for k, v in auth.headers().items()]
    if body is not None:
        head += ["content-type: application/json", f"content-length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
        elif line.lower().startswith(b"transfer-encoding:"):
            raise RuntimeError("chunked responses are not supported by this load generator")
    if length:
        await reader.readexactly(length)
    return status


async def _connection(gateway: str, method: str, path: str, deadline: float, out: list[float]) -> int:
    host, port = gateway.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    errors = 0
    fixed = None if method == "POST" else _request(method, gateway, path, None)
    try:
        while time.perf_counter() < deadline:
            request = fixed or _request(method, gateway, path, registration_body())
            t0 = time.perf_counter()
            writer.write(request)
            status = await _read_response(reader)
            out.append(time.perf_counter() - t0)
            errors += status >= 400
    finally:
        writer.close()
    return errors


def _load_process(gateway: str, method: str, path: str, conns: int, duration: float, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    async def run() -> tuple[list[float], int]:
        samples: list[float] = []
        deadline = time.perf_counter() + duration
        errors = await asyncio.gather(*(_connection(gateway, method, path, deadline, samples) for _ in range(conns)))
        return samples, sum(errors)

    queue.put(asyncio.run(run()))


def load(gateway: str, operation: str, method: str, path: str, processes: int, conns: int, duration: float) -> Result:
    """`processes` x `conns` keep-alive connections sending back-to-back requests for `duration` s."""
    samples, errors, elapsed = fan_out(_load_process, (gateway, method, path, conns, duration), processes)
    label = f"REST {method} via Envoy, asyncio {processes}x{conns} conns"
    return Result(operation, label, samples, elapsed, errors)


def fan_out(worker: Callable[..., None], args: tuple[Any, ...], processes: int) -> tuple[list[float], int, float]:
    """Run `worker(*args, queue)` in `processes` spawned processes; each puts (samples, errors) on the
    queue. Returns every sample, the error count and the wall time."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(*args, queue)) for _ in range(processes)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    samples: list[float] = []
    errors = 0
    for _ in procs:
        s, e = queue.get()
        samples.extend(s)
        errors += e
    for p in procs:
        p.join()
    return samples, errors, time.perf_counter() - started


def backlog_gauge(metrics: str) -> float | None:
    """The search service's backlog gauge from its /metrics at host:port (None: unreadable)."""
    host, port = metrics.rsplit(":", 1)
    try:
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
    except (OSError, http.client.HTTPException):
        return None
    for line in text.splitlines():
        if line.startswith(BACKLOG + " ") or line.startswith(BACKLOG + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


@dataclass
class BacklogWatch:
    """Samples the backlog gauge in a thread: the peak, and when it last read 0."""

    metrics: str
    every: float = 0.25
    samples: list[tuple[float, float]] = field(default_factory=list)  # (monotonic, backlog)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            value = backlog_gauge(self.metrics)
            if value is not None:
                self.samples.append((time.monotonic(), value))
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def peak(self) -> float:
        return max((v for _, v in self.samples), default=0.0)

    def drained_after(self, since: float, timeout: float) -> float | None:
        """Wait until the gauge reads 0 after `since`; seconds from `since`, None on timeout."""
        deadline = since + timeout
        while time.monotonic() < deadline:
            zero = [t for t, v in self.samples if t >= since and v == 0]
            if zero:
                return zero[0] - since
            time.sleep(self.every)
        return None


@dataclass
class WriteReport:
    alone: Result
    ceiling: Result
    burst: Result
    backlog_peak: float | None
    drain_seconds: float | None
    drain_timeout: float


Throughput = Callable[[str, str, str, str], Result]  # (gateway, operation, method, path) -> Result
Latency = Callable[[], Result]


def write_rows(
    gateway: str,
    search_metrics: str,
    alone: Latency,
    load: Throughput,
    drain_timeout: float,
    cpu: CpuMeter | None = None,
) -> WriteReport:
    """The ceiling, registration alone, then the burst while the backlog gauge is watched; `cpu`
    (the started platform's processes) notes where the CPU went during the ceiling and the burst.
    The ceiling goes first, so that it does not share the cores with indexing the lone registrations
    (indexing waits while registrations stream in, as in the burst)."""
    measure = cpu.measure if cpu is not None else lambda what: contextlib.nullcontext()
    with measure("the ceiling (GET /api/v1/health)"):
        ceiling = load(gateway, "Ceiling (trivial call)", "GET", "/api/v1/health")
    single = alone()
    watch = BacklogWatch(search_metrics)
    watch.start()
    try:
        with measure("the registration burst"):
            burst = load(gateway, "Agent Registration", "POST", "/api/v1/agents")
        ended = time.monotonic()
        readable = backlog_gauge(search_metrics) is not None
        drain = watch.drained_after(ended, drain_timeout) if readable else None
    finally:
        watch.stop()
    peak = watch.peak if watch.samples else None
    return WriteReport(single, ceiling, burst, peak, drain, drain_timeout)


def print_write_report(report: WriteReport) -> None:
    a, b, c = REGISTRATION_TARGET_MS
    burst, ceiling = report.burst, report.ceiling
    print("\nWrites: agent registration through Envoy (POST /api/v1/agents)")
    header = f"{'row':<34} {'req/s':>8} {'target':>8} {'ratio':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'err':>5}"
    print(header)
    print("-" * len(header))

    def row(name: str, r: Result, target: str, ratio: str) -> None:
        print(
            f"{name:<34} {r.rate:>8.0f} {target:>8} {ratio:>6} {r.pct(0.5):>8.2f} {r.pct(0.95):>8.2f} "
            f"{r.pct(0.99):>8.2f} {r.errors:>5}"
        )

    row("registration alone (1 in flight)", report.alone, "", "")
    row("registration burst", burst, f"{WRITE_TARGET_RPS:,}", f"{burst.rate / WRITE_TARGET_RPS:.2f}")
    row("ceiling: GET /api/v1/health", ceiling, "", "")
    print(f"latency target p50/p95/p99 {a}/{b}/{c} ms; burst: {burst.path}")
    if ceiling.rate:
        print(f"burst / ceiling (same load generator, same run): {burst.rate / ceiling.rate:.2f}")
    if report.backlog_peak is None:
        print("search index backlog: gauge not readable (no search service metrics)")
        return
    drained = (
        f"drained {report.drain_seconds:.1f} s after the burst"
        if report.drain_seconds is not None
        else f"not drained {report.drain_timeout:.0f} s after the burst"
    )
    print(f"search index backlog ({BACKLOG}): peak {report.backlog_peak:.0f}, {drained}")
