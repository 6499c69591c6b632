"""Watching an execution over REST through Envoy, without polling.

The long poll GET /api/v1/executions/{id}?wait=...&status_not=... answers at once when the status
already differs from the one the client has, at the change when it happens during the wait, and
at the end of the wait with the unchanged state. GET /api/v1/executions/{id}/watch is
WatchExecution as server-sent events.
"""

from __future__ import annotations

import http.client
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.e2e.platform import Platform, request
from tests.e2e.test_rest_agents import assert_error

pytestmark = pytest.mark.e2e


def idle_execution(platform: Platform) -> str:
    """A started execution nobody works on (it stays pending)."""
    body = {
        "name": f"wf-watch-{secrets.token_hex(4)}",
        "version": "1.0.0",
        "definition": {"steps": [{"id": "idle", "capability": f"nobody-{secrets.token_hex(4)}"}]},
    }
    status, _, workflow = request(platform.gateway, "POST", "/api/v1/workflows", body)
    assert status == 201, workflow
    status, _, _ = request(platform.gateway, "POST", f"/api/v1/workflows/{workflow['id']}/publish", {})
    assert status == 200
    status, _, started = request(platform.gateway, "POST", "/api/v1/orchestrate", {"workflow_id": workflow["id"]})
    assert status == 202 and started["status"] == "pending", started
    execution_id: str = started["execution_id"]
    return execution_id


def poll(platform: Platform, query: str, execution_id: str) -> tuple[int, dict[str, str], Any, float]:
    began = time.monotonic()
    status, headers, body = request(platform.gateway, "GET", f"/api/v1/executions/{execution_id}?{query}", timeout=70)
    return status, headers, body, time.monotonic() - began


def test_returns_at_once_when_the_status_already_differs(platform: Platform) -> None:
    execution_id = idle_execution(platform)
    status, headers, body, took = poll(platform, "wait=30s&status_not=running", execution_id)
    assert status == 200 and body["id"] == execution_id and body["status"] == "pending", body
    assert took < 15, took  # far from the 30 s it may hold a reply
    assert headers.get("cache-control") == "no-store", headers


def test_returns_at_the_change(platform: Platform) -> None:
    execution_id = idle_execution(platform)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(poll, platform, "wait=30s&status_not=pending", execution_id)
        time.sleep(0.5)
        assert not waiting.done()
        status, _, cancelled = request(platform.gateway, "POST", f"/api/v1/executions/{execution_id}/cancel", {})
        assert status == 200 and cancelled["status"] == "cancelled"
        status, _, body, took = waiting.result(timeout=40)
    assert status == 200 and body["status"] == "cancelled", body
    assert took < 15, took


def test_returns_at_the_timeout_with_the_unchanged_state(platform: Platform) -> None:
    execution_id = idle_execution(platform)
    status, _, body, took = poll(platform, "wait=1500ms", execution_id)
    assert status == 200 and body["status"] == "pending", body
    assert took >= 1.4, took


@pytest.mark.parametrize(
    ("query", "needle"),
    [("wait=forever", "wait"), ("wait=90s", "wait"), ("wait=-1s", "wait"), ("status_not=pending", "wait")],
)
def test_bad_waits_are_400_naming_wait(platform: Platform, query: str, needle: str) -> None:
    status, headers, body, _ = poll(platform, query, str(uuid.uuid4()))
    assert_error(status, headers, body, 400, needle)


def test_unknown_execution_is_404_and_bad_id_400(platform: Platform) -> None:
    status, headers, body, _ = poll(platform, "wait=5s", str(uuid.uuid4()))
    assert_error(status, headers, body, 404)
    status, headers, body, _ = poll(platform, "wait=5s", "nope")
    assert_error(status, headers, body, 400, "execution_id")


def events(response: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
    """The JSON of each server-sent event's `data:` line."""
    while line := response.readline():
        if line.startswith(b"data:"):
            yield json.loads(line[5:])


def test_watch_streams_server_sent_events_until_the_end(platform: Platform) -> None:
    execution_id = idle_execution(platform)
    host, port = platform.gateway.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", f"/api/v1/executions/{execution_id}/watch", headers={
            "authorization": f"Bearer {platform.admin_token}", "accept": "text/event-stream"})  # fmt: skip
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("content-type", "").startswith("text/event-stream")
        stream = events(response)
        first = next(stream)
        assert first["initial"] and first["execution"]["status"] == "pending"
        assert [t["status"] for t in first["tasks"]] == ["pending"]
        status, _, _ = request(platform.gateway, "POST", f"/api/v1/executions/{execution_id}/cancel", {})
        assert status == 200
        rest = list(stream)  # the stream ends after the final status
        assert [m["execution"]["status"] for m in rest] == ["cancelled"] and not rest[0]["initial"]
    finally:
        conn.close()


def test_watch_of_an_unknown_execution_is_404(platform: Platform) -> None:
    status, headers, body = request(platform.gateway, "GET", f"/api/v1/executions/{uuid.uuid4()}/watch")
    assert_error(status, headers, body, 404)
    status, headers, body = request(platform.gateway, "GET", "/api/v1/executions/nope/watch")
    assert_error(status, headers, body, 400, "execution_id")
