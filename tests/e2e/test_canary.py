"""`ossa up --canary`: the gateway's Istio canary (istio/) running for real behind Envoy.

Two gateway processes (subsets v1 = blue, v2 = green, reporting `0.1.9+blue` / `0.1.9+green` in
GetHealth's version) and Envoy's routes translated from the VirtualService: without the header
about 10% of the requests reach v2, with `canary: true` all of them.
"""

from __future__ import annotations

import http.client
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.platform import Platform, make_platform, request

pytestmark = pytest.mark.e2e

REQUESTS = 4000
# 10% of 4000 is 400 (standard deviation 19): ±2 points is ±80, over four deviations.
LOW, HIGH = 0.08, 0.12


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    p = make_platform(tmp_path_factory.mktemp("canary") / "data", {"OSSA_RATELIMIT_ANONYMOUS": "0"})
    p.start("--canary")
    _wait_until_v2_healthy(p)
    yield p
    code = p.stop()
    assert code == 0, f"ossa up --canary exited with {code}:\n{p.log_tail()}"


def _wait_until_v2_healthy(p: Platform, timeout: float = 60.0) -> None:
    """`ossa up` waited for the report of whichever gateway answered; v2's own first report may
    predate its peers' start (it refreshes every second)."""
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = request(p.gateway, "GET", "/api/v1/health", headers={"canary": "true"})
        if status == 200:
            return
        assert time.monotonic() < deadline, f"v2 never healthy: {body}"
        time.sleep(0.2)


def _labels(p: Platform, count: int, headers: dict[str, str] | None = None) -> Counter[str]:
    seen: Counter[str] = Counter()
    host, port = p.gateway.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        for _ in range(count):
            status, _, body = request(p.gateway, "GET", "/api/v1/health", headers=headers, conn=conn)
            assert status == 200, body
            seen[body["version"].rpartition("+")[2]] += 1
    finally:
        conn.close()
    return seen


def test_both_subsets_run_and_report_their_label(canary: Platform) -> None:
    log = (canary.data_dir / "logs").iterdir()
    assert {"gateway-v2.log"} <= {f.name for f in log}
    assert set(_labels(canary, 200)) == {"blue", "green"}


def test_ten_percent_reach_v2_without_the_header(canary: Platform) -> None:
    seen = _labels(canary, REQUESTS)
    assert set(seen) == {"blue", "green"}
    share = seen["green"] / REQUESTS
    assert LOW <= share <= HIGH, f"v2 (green) got {share:.1%} of {REQUESTS} requests: {dict(seen)}"


def test_all_reach_v2_with_the_canary_header(canary: Platform) -> None:
    seen = _labels(canary, 500, headers={"canary": "true"})
    assert seen == Counter({"green": 500})


def test_other_header_values_are_split(canary: Platform) -> None:
    seen = _labels(canary, 300, headers={"canary": "false"})
    assert "blue" in seen


def test_envoy_config_is_the_translation(canary: Platform) -> None:
    text = (Path(canary.data_dir) / "envoy" / "envoy.yaml").read_text()
    assert "gateway-v1" in text and "gateway-v2" in text and "weighted_clusters" in text
