"""Cached REST reads through Envoy (gateway_http/envoy_config/cache.py), with a native load generator.

Python's http.client cannot generate 10k requests/s on two cores, so these rows use `h2load`
(Debian/Ubuntu: `apt-get install -y nghttp2-client`); without it they are skipped with that hint.
Every row repeats one GET with one credential, so after the first request of each second Envoy
answers from its cache. The ceiling row is a second, bare Envoy (same binary, same worker count)
answering a direct_response of the same size to the same load generator in the same run: what the
box can do for HTTP with no Python and no cache lookup at all. h2load reports no percentiles; its
per-request log (--log-file) gives them.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.report import Result, percentile_ms
from tests.envoy import envoy_running

INSTALL_HINT = "apt-get install -y nghttp2-client"
READ_TARGET_RPS = 10_000


@dataclass(frozen=True)
class ReadRow:
    operation: str
    path: str  # request path on the gateway (or the ceiling Envoy)


def h2load() -> str | None:
    return shutil.which("h2load")


def run_h2load(
    url: str, operation: str, label: str, *, token: str, duration: float, clients: int, threads: int = 2
) -> Result:
    """One h2load run over HTTP/1.1 keep-alive connections; samples from its per-request log."""
    binary = h2load()
    if binary is None:
        raise FileNotFoundError(f"h2load not found: {INSTALL_HINT}")
    with tempfile.NamedTemporaryFile("r", suffix=".tsv") as log:
        argv = [binary, "--h1", "-c", str(clients), "-t", str(threads), "-D", str(max(1, round(duration)))]
        argv += ["--warm-up-time", "1", "--log-file", log.name]
        if token:
            argv += ["-H", f"authorization: Bearer {token}"]
        proc = subprocess.run([*argv, url], capture_output=True, text=True, timeout=duration + 60)
        if proc.returncode != 0:
            raise RuntimeError(f"h2load failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        samples, errors, first, last = [], Counter[int](), float("inf"), 0.0
        for line in log:
            parts = line.split("\t")
            if len(parts) < 3:
                continue
            start_us, status, took_us = int(parts[0]), int(parts[1]), int(parts[2])
            if status == 0:  # no response: a request h2load abandoned (in flight when the run ended)
                errors[0] += 1
                continue
            samples.append(took_us / 1e6)
            if not 200 <= status < 300:
                errors[status] += 1
            first, last = min(first, start_us), max(last, start_us + took_us)
    elapsed = (last - first) / 1e6 if samples else duration
    # At most one request per connection is in flight when the run stops: more unanswered ones than
    # connections means connections failed during the run, and those count as errors.
    unanswered = errors.pop(0, 0)
    abandoned = min(unanswered, clients)
    if unanswered > abandoned:
        errors[0] = unanswered - abandoned
    if errors:  # which statuses, as h2load's per-request log gives them
        label += "; errors by status: " + ", ".join(f"{code} x{n}" for code, n in sorted(errors.items()))
    if abandoned:
        label += f"; {abandoned} in flight when the run ended (not counted)"
    return Result(operation, label, samples, elapsed, errors.total())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
CEILING_CONFIG = """
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}}}
static_resources:
  listeners:
    - name: ceiling
      address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": {hcm_type}
                stat_prefix: ceiling
                codec_type: AUTO
                route_config:
                  max_direct_response_body_size_bytes: 16777216
                  virtual_hosts:
                    - name: ceiling
                      domains: ["*"]
                      routes:
                        - match: {{prefix: /}}
                          direct_response: {{status: 200, body: {{inline_string: {body!r}}}}}
                          response_headers_to_add:
                            - header: {{key: content-type, value: application/json}}
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""


@contextmanager
def ceiling_envoy(body_bytes: int) -> Iterator[str]:
    """A bare Envoy answering every request with `body_bytes` bytes itself; yields its base URL."""
    port, admin = _free_port(), _free_port()
    with tempfile.TemporaryDirectory(prefix="ossa-ceiling-") as tmp:
        config = Path(tmp) / "envoy.yaml"
        body = "x" * max(body_bytes, 1)
        config.write_text(CEILING_CONFIG.format(port=port, admin=admin, body=body, hcm_type=HCM_TYPE))
        with envoy_running(config, admin, Path(tmp) / "envoy.log", timeout=15):  # tests/envoy.py
            yield f"http://127.0.0.1:{port}"


def body_size(gateway: str, path: str, token: str) -> int:
    request = urllib.request.Request(f"http://{gateway}{path}", headers={"authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as r:
        return len(r.read())


def cached_read_rows(
    gateway: str, rows: list[ReadRow], *, token: str, duration: float, clients: int
) -> tuple[list[Result], Result]:
    """Each row's throughput through the gateway's cache, then the bare-Envoy ceiling."""
    results = [
        run_h2load(
            f"http://{gateway}{row.path}",
            row.operation,
            f"REST GET cached, h2load {clients} conns",
            token=token,
            duration=duration,
            clients=clients,
        )
        for row in rows
    ]
    size = max(body_size(gateway, row.path, token) for row in rows)
    with ceiling_envoy(size) as url:
        ceiling = run_h2load(
            f"{url}/", "Envoy-only ceiling", f"direct_response {size} B, {clients} conns",
            token=token, duration=duration, clients=clients,
        )  # fmt: skip
    return results, ceiling


def print_cached_reads(results: list[Result], ceiling: Result) -> None:
    """Target, measured, ceiling and the ratio, with the latency percentiles, one line per row."""
    print("\nCached reads through Envoy (h2load, HTTP/1.1 keep-alive; target and ceiling of this run)")
    header = (
        f"{'operation':<26} {'n':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'req/s':>8} "
        f"{'target':>8} {'ceiling':>8} {'of ceil':>7} {'err':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in [*results, ceiling]:
        print(
            f"{r.operation:<26} {len(r.samples):>8} {percentile_ms(r.samples, 0.5):>7.2f} "
            f"{percentile_ms(r.samples, 0.95):>7.2f} {percentile_ms(r.samples, 0.99):>7.2f} {r.rate:>8.0f} "
            f"{READ_TARGET_RPS:>8} {ceiling.rate:>8.0f} {r.rate / ceiling.rate if ceiling.rate else 0:>7.0%} "
            f"{r.errors:>5}"
        )
    print(f"({ceiling.path}; rows: {results[0].path.split(';')[0] if results else ''})")
    for r in results:
        if "; " in r.path:  # errors by status, requests cut short by the end of the run
            print(f"  {r.operation}: {r.path.split('; ', 1)[1]}")
