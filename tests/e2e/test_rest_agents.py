"""The agent REST surface on the gateway port, through real Envoy to the real registry."""

from __future__ import annotations

import http.client
import re
import secrets
import uuid
from typing import Any

import pytest

from tests.e2e.platform import Platform, request

pytestmark = pytest.mark.e2e
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def new_agent(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"agent-{secrets.token_hex(4)}",
        "type": "worker",
        "version": "1.0.0",
        "capabilities": ["summarize"],
        "config": {"model": "small"},
        "metadata": {"description": "summarises text"},
    }
    body.update(changes)
    return body


def register(platform: Platform, **changes: Any) -> dict[str, Any]:
    body = {k: v for k, v in new_agent(**changes).items() if v is not None}
    status, _, agent = request(platform.gateway, "POST", "/api/v1/agents", body)
    assert status == 201, agent
    assert isinstance(agent, dict)
    return agent


def assert_error(status: int, headers: dict[str, str], body: Any, expected_status: int, *needles: str) -> None:
    assert status == expected_status, body
    assert headers.get("content-type", "").startswith("application/json"), headers
    assert isinstance(body, dict) and set(body) == {"code", "message", "details"}, body
    assert isinstance(body["code"], int) and body["message"], body
    for needle in needles:
        assert needle in body["message"], body


def test_register_returns_201_with_the_agent(platform: Platform) -> None:
    sent = new_agent()
    status, headers, agent = request(platform.gateway, "POST", "/api/v1/agents", sent)
    assert status == 201, agent
    assert headers["content-type"].startswith("application/json")
    assert "x-http-code" not in headers
    uuid.UUID(agent["id"])
    assert agent["status"] == "idle"
    for key in ("name", "type", "version", "capabilities", "config", "metadata"):
        assert agent[key] == sent[key]
    for key in ("created_at", "updated_at", "last_heartbeat"):
        assert TIMESTAMP.match(agent[key]), agent


def test_same_name_again_is_409(platform: Platform) -> None:
    agent = register(platform)
    status, headers, body = request(platform.gateway, "POST", "/api/v1/agents", new_agent(name=agent["name"]))
    assert_error(status, headers, body, 409, agent["name"])


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"type": "wizard"}, "type"),
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"version": "banana"}, "version"),
        ({"version": None}, "version"),
        ({"capabilities": ["a", "a"]}, "capabilities"),
    ],
)
def test_bad_registration_is_400_naming_the_field(platform: Platform, changes: dict[str, Any], field: str) -> None:
    body = new_agent(**changes)
    body = {k: v for k, v in body.items() if v is not None}
    status, headers, reply = request(platform.gateway, "POST", "/api/v1/agents", body)
    assert_error(status, headers, reply, 400, field)


def test_malformed_json_is_400(platform: Platform) -> None:
    status, headers, body = request(platform.gateway, "POST", "/api/v1/agents", raw=b'{"name": ')
    assert_error(status, headers, body, 400)


def test_list_filters_by_type_and_status(platform: Platform) -> None:
    worker = register(platform, type="worker")
    monitor = register(platform, type="monitor")
    status, _, agents = request(platform.gateway, "GET", "/api/v1/agents?type=worker&status=idle")
    assert status == 200 and isinstance(agents, list)
    ids = [a["id"] for a in agents]
    assert worker["id"] in ids and monitor["id"] not in ids
    assert all(a["type"] == "worker" and a["status"] == "idle" for a in agents)
    status, _, everyone = request(platform.gateway, "GET", "/api/v1/agents?limit=1000")
    assert status == 200 and {worker["id"], monitor["id"]} <= {a["id"] for a in everyone}


@pytest.mark.parametrize("query", ["type=wizard", "status=sleeping", "colour=blue", "limit=5000"])
def test_bad_filters_are_400(platform: Platform, query: str) -> None:
    status, headers, body = request(platform.gateway, "GET", f"/api/v1/agents?{query}")
    assert_error(status, headers, body, 400)


def test_minimal_registration_has_the_full_shape(platform: Platform) -> None:
    body = {"name": f"bare-{secrets.token_hex(4)}", "type": "critic", "version": "0.0.1"}
    agent = register(platform, **body, capabilities=None, config=None, metadata=None)
    assert {"id", "name", "type", "version", "status", "capabilities", "config", "metadata"} <= set(agent)
    assert (agent["capabilities"], agent["config"], agent["metadata"]) == ([], {}, {})


def test_get_agent(platform: Platform) -> None:
    agent = register(platform)
    status, _, got = request(platform.gateway, "GET", f"/api/v1/agents/{agent['id']}")
    assert status == 200 and got == agent


def test_unknown_id_is_404_and_non_uuid_is_400(platform: Platform) -> None:
    missing = str(uuid.uuid4())
    status, headers, body = request(platform.gateway, "GET", f"/api/v1/agents/{missing}")
    assert_error(status, headers, body, 404, missing)
    status, headers, body = request(platform.gateway, "GET", "/api/v1/agents/not-a-uuid")
    assert_error(status, headers, body, 400, "agent_id")


def test_delete_is_204_then_404_on_one_connection(platform: Platform) -> None:
    agent = register(platform)
    host, port = platform.gateway.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        status, headers, body = request(platform.gateway, "DELETE", f"/api/v1/agents/{agent['id']}", conn=conn)
        assert status == 204 and body is None and "x-http-code" not in headers
        assert "content-type" not in headers
        # keep-alive survives the 204: the next request on the same connection works
        status, headers, body = request(platform.gateway, "DELETE", f"/api/v1/agents/{agent['id']}", conn=conn)
        assert_error(status, headers, body, 404)
        status, _, _ = request(platform.gateway, "GET", f"/api/v1/agents/{agent['id']}", conn=conn)
        assert status == 404
    finally:
        conn.close()


def test_unknown_route_is_404_json(platform: Platform) -> None:
    status, headers, body = request(platform.gateway, "GET", "/api/v1/nothing-here")
    assert_error(status, headers, body, 404)


def test_health_reports_every_component(platform: Platform) -> None:
    status, _, report = request(platform.gateway, "GET", "/api/v1/health")
    assert status == 200, report
    assert report["status"] == "healthy"
    states = {c["name"]: c["state"] for c in report["components"]}
    assert states["postgres"] == states["redis"] == states["registry"] == states["orchestrator"] == "healthy"


def test_openapi_document_is_served(platform: Platform) -> None:
    status, headers, doc = request(platform.gateway, "GET", "/api/v1/openapi.json")
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert doc["openapi"].startswith("3.1")
    assert {"/api/v1/agents", "/api/v1/agents/{agent_id}", "/api/v1/health"} <= set(doc["paths"])
