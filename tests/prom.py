"""Test helpers for Prometheus endpoints: scrape over HTTP, read samples, run promtool."""

from __future__ import annotations

import asyncio
import http.client
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def get(port: int, path: str = "/metrics", method: str = "GET", accept: str = "") -> tuple[int, str, bytes]:
    """(status, content type, body) of one request, without blocking the event loop the server runs on."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        extra = f"Accept: {accept}\r\n" if accept else ""
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers.get("content-type", ""), body


async def scrape(port: int) -> str:
    status, _, body = await get(port)
    assert status == 200, body
    return body.decode()


def scrape_sync(port: int, host: str = "127.0.0.1") -> str:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 200, body
        return body
    finally:
        conn.close()


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over the series whose labels include `labels` (0 if none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def has(samples: Samples, name: str) -> bool:
    return any(n == name for n, _ in samples)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(ls)[label] for n, ls in samples if n == name and label in dict(ls)}


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus; CI installs it in .ci/run)")
    return path


def promtool_check(*args: str, stdin: str | None = None) -> str:
    out = subprocess.run([promtool(), "check", *args], input=stdin, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"promtool check {' '.join(args)}:\n{out.stdout}{out.stderr}"
    return out.stdout + out.stderr
