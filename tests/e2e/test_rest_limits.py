"""Bad input at the edges over REST, through Envoy on a real `ossa up`: each is a 4xx naming what
is wrong, nothing is stored, and every service still answers (gRPC: test_grpc_limits.py).

The limits are in ossa_runtime/limits.py and docs/api.md ("Limits")."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from ossa_runtime import limits
from tests.e2e.limits import Snapshot, assert_still_answering, no_crashes, published_workflow, row_counts
from tests.e2e.platform import ADMIN_TOKENS, Platform, request
from tests.e2e.test_rest_metrics import wait_for
from tests.uploads import upload

pytestmark = pytest.mark.e2e
MB = 1024 * 1024


@pytest.fixture
async def stored(platform: Platform) -> AsyncIterator[Snapshot]:
    async with row_counts(platform) as snapshot:
        yield snapshot


@pytest.fixture(scope="module")
def workflow_id(platform: Platform) -> str:
    return published_workflow(platform)


@pytest.fixture(scope="module", autouse=True)
def crash_free(platform: Platform) -> Iterator[None]:
    with no_crashes(platform):
        yield


def assert_refused(status: int, body: Any, expected: int, *needles: str) -> None:
    """The one error shape, short, naming what is wrong."""
    assert status == expected, body
    assert isinstance(body, dict) and set(body) == {"code", "message", "details"}, body
    assert len(json.dumps(body)) < 16 * 1024, "an error about a large request must stay small"
    for needle in needles:
        assert needle in body["message"], body


async def send(platform: Platform, stored: Snapshot, method: str, path: str, raw: bytes) -> tuple[int, Any]:
    before = await stored()
    status, _, body = request(platform.gateway, method, path, raw=raw, timeout=60)
    assert await stored() == before, "a refused request stored something"
    return status, body


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def agent(**fields: Any) -> bytes:
    body = {"name": f"limits-{secrets.token_hex(4)}", "type": "worker", "version": "1.0.0", **fields}
    return json.dumps(body).encode()


def workflow(definition: Any = None, **fields: Any) -> bytes:
    steps = [{"id": "a", "capability": "x"}]
    body = {"name": f"limits-{secrets.token_hex(4)}", "version": "1.0.0", "definition": definition or {"steps": steps}}
    return json.dumps({**body, **fields}).encode()


# Sizes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field", "size"),
    [("/api/v1/orchestrate", "context", 50 * MB), ("/api/v1/agents", "name", 5 * MB)],
)
async def test_a_body_over_the_limit_is_413(
    platform: Platform, stored: Snapshot, path: str, field: str, size: int
) -> None:
    before = await stored()
    bearer = {"authorization": f"Bearer {ADMIN_TOKENS[platform.gateway]}"}
    status, headers, body, _ = upload(platform.gateway, path, size, field=field, headers=bearer)
    assert_refused(status, body, 413, f"request body: must be at most {limits.HTTP_MAX_BODY_BYTES} bytes")
    assert body["code"] == 8 and headers["content-type"] == "application/json"
    assert await stored() == before
    assert_still_answering(platform)


async def test_a_context_over_its_limit_is_400(platform: Platform, stored: Snapshot, workflow_id: str) -> None:
    raw = json.dumps({"workflow_id": workflow_id, "context": {"doc": "y" * (2 * MB)}}).encode()
    status, body = await send(platform, stored, "POST", "/api/v1/orchestrate", raw)
    assert_refused(status, body, 400, f"context: must be at most {limits.CONTEXT_MAX_BYTES} bytes of JSON")
    assert body["details"][0]["field_violations"][0]["field"] == "context"


async def test_headers_over_the_limit_are_431_and_a_long_id_is_400(platform: Platform) -> None:
    status, _, body = request(platform.gateway, "GET", "/api/v1/agents/" + "x" * 40_000)
    assert_refused(status, body, 431, f"request headers: must be at most {limits.HTTP_MAX_HEADERS_KB} KiB")
    status, _, body = request(platform.gateway, "GET", "/api/v1/agents/" + "x" * 20_000)  # was a 429
    assert_refused(status, body, 400, "agent_id: must be a UUID")
    status, _, body = request(platform.gateway, "GET", "/api/v1/agents?name=" + "x" * 20_000)
    assert_refused(status, body, 400, "name: must be at most 255 characters")
    assert_still_answering(platform)


MEGA = "x" * MB


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        ("/api/v1/agents", agent(name=MEGA), "name"),
        ("/api/v1/agents", agent(capabilities=["ok", MEGA]), "capabilities[1]"),
        ("/api/v1/workflows", workflow(name=MEGA), "name"),
        ("/api/v1/workflows", workflow(description=MEGA), "description"),
        (  # 100 KB: a megabyte would be refused for the size of the definition first
            "/api/v1/workflows",
            workflow({"steps": [{"id": MEGA[:100_000], "capability": "x"}]}),
            "definition.steps[0].id",
        ),
        (
            "/api/v1/orchestrate",
            json.dumps({"workflow_name": MEGA, "workflow_version": "1.0.0"}).encode(),
            "workflow_name",
        ),
        ("/api/v1/agents/search", json.dumps({"query": MEGA}).encode(), "query"),
        ("/api/v1/knowledge", json.dumps({"content": "c", "source": MEGA}).encode(), "source"),
        ("/api/v1/metrics", json.dumps({"metrics": [{"name": MEGA, "value": 1}]}).encode(), "metrics[0].name"),
        ("/api/v1/auth/api-keys", json.dumps({"name": MEGA, "role": "viewer"}).encode(), "name"),
    ],
)
async def test_megabyte_strings_are_named(
    platform: Platform, stored: Snapshot, path: str, raw: bytes, field: str
) -> None:
    status, body = await send(platform, stored, "POST", path, raw)
    assert_refused(status, body, 400, f"{field}: ")
    assert body["details"][0]["field_violations"][0]["field"] == field


# Nesting, encoding, NUL ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("depth", "needle"),
    [
        (25, "metadata: must nest at most 20 levels deep, got 25"),  # the service's own check
        (60, "metadata: must nest at most 20 levels deep"),  # protobuf cannot decode it (was a 500)
        (10_000, "Message too deep"),  # Envoy's JSON parser stops at about 100 levels
    ],
)
async def test_deep_json_is_refused(platform: Platform, stored: Snapshot, depth: int, needle: str) -> None:
    raw = agent(metadata="@").replace(b'"@"', nested(depth).encode())
    status, body = await send(platform, stored, "POST", "/api/v1/agents", raw)
    assert_refused(status, body, 400, needle)
    raw = workflow({"steps": [{"id": "a", "capability": "x", "input": "@"}]}).replace(b'"@"', nested(depth).encode())
    status, body = await send(platform, stored, "POST", "/api/v1/workflows", raw)
    assert_refused(status, body, 400, "Message too deep" if depth > 100 else "definition: must nest at most 20")
    assert_still_answering(platform)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "bad-\xff\xfe", "type": "worker", "version": "1.0.0"}',
        b'{"name": "ok", "type": "worker", "version": "1.0.0", "metadata": {"k": "\xc3\x28"}}',
        b'{"name": "ok", "type": "worker", "version": "1.0.0", "metadata": {"k": "\\ud800"}}',  # lone surrogate
    ],
)
async def test_invalid_utf8_is_400(platform: Platform, stored: Snapshot, raw: bytes) -> None:
    status, body = await send(platform, stored, "POST", "/api/v1/agents", raw)
    assert_refused(status, body, 400)
    assert body["code"] == 3 and ("UTF-8" in body["message"] or "surrogate" in body["message"]), body


NUL = "a\u0000b"


@pytest.mark.parametrize(
    ("method", "path", "raw", "field"),
    [
        ("POST", "/api/v1/agents", agent(name=NUL), "name"),
        ("POST", "/api/v1/agents", agent(capabilities=[NUL]), "capabilities[0]"),
        ("POST", "/api/v1/agents", agent(metadata={NUL: 1}), "metadata"),
        ("POST", "/api/v1/agents", agent(config={"k": [NUL]}), "config"),
        ("POST", "/api/v1/workflows", workflow(description=NUL), "description"),
        ("POST", "/api/v1/workflows", workflow({"steps": [{"id": "a", "capability": NUL}]}), "definition"),
        ("POST", "/api/v1/orchestrate", b"", "context"),  # the body is built in the test
        (
            "POST",
            "/api/v1/knowledge",
            json.dumps({"content": "c", "source": "s", "metadata": {"k": NUL}}).encode(),
            "metadata",
        ),
        (
            "POST",
            "/api/v1/metrics",
            json.dumps({"metrics": [{"name": "m", "value": 1, "labels": {"k": NUL}}]}).encode(),
            "metrics[0].labels['k']",
        ),
        ("GET", "/api/v1/agents?name=a%00b", None, "name"),
        ("GET", "/api/v1/workflows?name=a%00b", None, "name"),
    ],
)
async def test_nul_characters_are_400_not_500(
    platform: Platform, stored: Snapshot, workflow_id: str, method: str, path: str, raw: bytes | None, field: str
) -> None:
    if field == "context":
        raw = json.dumps({"workflow_id": workflow_id, "context": {"k": NUL}}).encode()
    status, body = await send(platform, stored, method, path, raw)  # type: ignore[arg-type]
    assert_refused(status, body, 400, f"{field}: ")
    assert body["details"][0]["field_violations"][0]["field"] == field


# Workflows: steps and cycles ----------------------------------------------------------------------


async def test_ten_thousand_steps_and_a_thousand_step_cycle(platform: Platform, stored: Snapshot) -> None:
    many = [{"id": f"s{i}", "capability": "x"} for i in range(10_000)]
    status, body = await send(platform, stored, "POST", "/api/v1/workflows", workflow({"steps": many}))
    assert_refused(status, body, 400, "definition.steps: must have at most 1000 steps, got 10000")
    cycle = [{"id": f"s{i}", "capability": "x", "depends_on": [f"s{(i + 1) % 1000}"]} for i in range(1000)]
    status, body = await send(platform, stored, "POST", "/api/v1/workflows", workflow({"steps": cycle}))
    assert_refused(status, body, 400, "definition.steps: dependency cycle through s0, s1,", "and 990 more steps")
    # A thousand bad steps: twenty are named, the rest counted (this reply once broke the trailers: 502).
    bad = [{"id": f"s{i}", "capability": "x", "depends_on": ["y" * 900]} for i in range(1000)]
    status, body = await send(platform, stored, "POST", "/api/v1/workflows", workflow({"steps": bad}))
    assert_refused(status, body, 400, "definition.steps[s0].depends_on: unknown step", "and 980 more")
    assert len(body["details"][0]["field_violations"]) == limits.ERROR_MAX_VIOLATIONS
    assert_still_answering(platform)


# Integers -----------------------------------------------------------------------------------------


def step_with(**fields: Any) -> bytes:
    return workflow({"steps": [{"id": "a", "capability": "x", **fields}]})


@pytest.mark.parametrize(
    ("method", "path", "raw", "needle"),
    [
        ("POST", "/api/v1/orchestrate", b'{"workflow_id": "@", "priority": -1}', "priority: must be between 1 and 10"),
        ("POST", "/api/v1/orchestrate", b'{"workflow_id": "@", "priority": 2147483648}', "priority: invalid value"),
        ("POST", "/api/v1/orchestrate", b'{"workflow_id": "@", "priority": 9223372036854775808}', "priority:"),
        ("GET", "/api/v1/agents?limit=-1", None, "limit: must be between 1 and 1000"),
        ("GET", "/api/v1/agents?limit=2147483648", None, "limit: invalid value"),
        ("GET", "/api/v1/workflows?offset=-1", None, "offset: must not be negative"),
        ("GET", "/api/v1/executions?offset=99999999999999999999", None, "offset: invalid value"),
        ("POST", "/api/v1/agents/search", b'{"query": "q", "limit": 4294967296}', "limit: invalid value"),
        ("POST", "/api/v1/workflows", step_with(priority=2**31), "definition.steps[a].priority: must be between 1"),
        ("POST", "/api/v1/workflows", step_with(timeout_seconds=2**40), "definition.steps[a].timeout_seconds"),
        ("POST", "/api/v1/workflows", step_with(max_retries=-1), "definition.steps[a].max_retries"),
        ("POST", "/api/v1/workflows", step_with(lease_seconds=1e300), "definition.steps[a].lease_seconds"),
        ("POST", "/api/v1/workflows", b'{"name": "n", "version": "1.0.0", "definition": {"x": 1e400}}', "double"),
    ],
)
async def test_negative_and_overflowing_integers(
    platform: Platform, stored: Snapshot, workflow_id: str, method: str, path: str, raw: bytes | None, needle: str
) -> None:
    raw = raw.replace(b"@", workflow_id.encode()) if raw is not None else None
    status, body = await send(platform, stored, method, path, raw)  # type: ignore[arg-type]
    assert_refused(status, body, 400, needle)


# Metrics: a refused batch never reaches the buffer ------------------------------------------------


def test_refused_metrics_are_never_flushed(platform: Platform) -> None:
    bad, good = f"limits.bad.{secrets.token_hex(4)}", f"limits.good.{secrets.token_hex(4)}"
    for point in ({"name": bad, "value": 1, "labels": {"k": NUL}}, {"name": bad, "value": 1, "labels": {MEGA: "v"}}):
        status, _, body = request(platform.gateway, "POST", "/api/v1/metrics", {"metrics": [point]})
        assert_refused(status, body, 400, "metrics[0].labels")
    status, _, body = request(platform.gateway, "POST", "/api/v1/metrics", {"metrics": [{"name": good, "value": 1}]})
    assert status == 202, body
    wait_for(platform, 1, metric_name=good)  # flushed in order: anything buffered before it is in too
    status, _, found = request(platform.gateway, "GET", f"/api/v1/metrics?metric_name={bad}&agg=count")
    assert status == 200 and found == [], found
