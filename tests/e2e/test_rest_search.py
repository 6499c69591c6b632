"""Semantic search over REST through real Envoy to the search service started by `ossa up`
(embedded qdrant-edge store, the local embedding model), plus gRPC and `ossa reindex`."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ossa.search.v1 import search_pb2, search_pb2_grpc
from tests.e2e.platform import Platform, ossa_executable, request
from tests.e2e.test_rest_agents import assert_error, register

pytestmark = pytest.mark.e2e
WAIT_SECONDS = 60.0
JAN_1 = "2026-01-01T00:00:00Z"

JOBS = {
    "haiku": "Translates Japanese haiku poetry into English verse.",
    "volcano": "Predicts volcano eruptions from seismograph readings.",
    "tables": "Books restaurant tables and manages dinner reservations.",
}
QUERIES = {
    "turn this japanese poem into english": "haiku",
    "is the mountain about to erupt": "volcano",
    "reserve a place for supper tonight": "tables",
}


def search_agents(platform: Platform, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    return request(platform.gateway, "POST", "/api/v1/agents/search", body)


def top_agent(platform: Platform, query: str, want: str, among: Collection[str] = (), **filters: Any) -> dict[str, Any]:
    """The best match for `query` (among the agents `among`, if given: the platform is shared with
    other tests, whose agents may score near this test's), once the indexer has caught up with `want`."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        status, _, body = search_agents(platform, {"query": query, "limit": 10, **filters})
        assert status == 200, body
        results = [r for r in body.get("results", []) if not among or r["agent"]["id"] in among]
        if any(r["agent"]["id"] == want for r in results) or time.monotonic() > deadline:
            assert results, body
            return dict(results[0])
        time.sleep(0.2)


def own(agents: dict[str, dict[str, Any]]) -> set[str]:
    return {a["id"] for a in agents.values()}


@pytest.fixture(scope="module")
def agents(platform: Platform) -> dict[str, dict[str, Any]]:
    suffix = secrets.token_hex(3)
    return {
        job: register(platform, name=f"{job}-{suffix}", type="worker", metadata={"description": text})
        for job, text in JOBS.items()
    }


def test_plain_words_query_ranks_the_right_agent_first(platform: Platform, agents: dict[str, dict[str, Any]]) -> None:
    for query, job in QUERIES.items():
        top = top_agent(platform, query, agents[job]["id"], among=own(agents))
        assert top["agent"]["id"] == agents[job]["id"], (query, top)
        assert top["agent"]["type"] == "worker" and top["agent"]["status"] == "idle"
        assert 0 < top["score"] <= 1.0001


def test_search_and_get_routes_do_not_collide(platform: Platform, agents: dict[str, dict[str, Any]]) -> None:
    agent = agents["volcano"]
    status, _, got = request(platform.gateway, "GET", f"/api/v1/agents/{agent['id']}")
    assert status == 200 and got["id"] == agent["id"]
    status, headers, body = request(platform.gateway, "GET", "/api/v1/agents/search")  # GetAgent("search")
    assert_error(status, headers, body, 400, "agent_id")
    status, _, body = search_agents(platform, {"query": "is the mountain about to erupt", "type": "critic"})
    assert status == 200 and agent["id"] not in [r["agent"]["id"] for r in body.get("results", [])]
    status, _, body = search_agents(platform, {"query": "is the mountain about to erupt", "status": "offline"})
    assert status == 200 and agent["id"] not in [r["agent"]["id"] for r in body.get("results", [])]


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/api/v1/agents/search", {"query": ""}, "query"),
        ("/api/v1/agents/search", {"query": "x", "limit": 1000}, "limit"),
        ("/api/v1/agents/search", {"query": "x", "type": "wizard"}, "type"),
        ("/api/v1/workflows/search", {"query": "x", "status": "draft"}, "status"),
        ("/api/v1/knowledge", {"content": "", "source": "s"}, "content"),
        ("/api/v1/knowledge/search", {"query": "x", "from": "2026-01-02T00:00:00Z", "to": JAN_1}, "from"),
    ],
)  # fmt: skip
def test_bad_input_is_400_naming_the_field(platform: Platform, path: str, body: dict[str, Any], needle: str) -> None:
    status, headers, reply = request(platform.gateway, "POST", path, body)
    assert_error(status, headers, reply, 400, needle)


def test_workflows_are_found_once_published(platform: Platform) -> None:
    body = {
        "name": f"bird-census-{secrets.token_hex(3)}",
        "version": "1.0.0",
        "description": "Counts migrating birds from wetland camera traps.",
        "definition": {"tags": ["ecology"], "steps": [{"id": "count", "capability": "vision"}]},
    }
    status, _, workflow = request(platform.gateway, "POST", "/api/v1/workflows", body)
    assert status == 201, workflow
    status, _, _ = request(platform.gateway, "POST", f"/api/v1/workflows/{workflow['id']}/publish", {})
    assert status == 200
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        query = {"query": "how many ducks fly south", "tags": ["ecology"], "limit": 5}
        status, _, found = request(platform.gateway, "POST", "/api/v1/workflows/search", query)
        assert status == 200, found
        ids = [r["workflow"]["id"] for r in found.get("results", [])]
        if workflow["id"] in ids or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert ids[:1] == [workflow["id"]] and found["results"][0]["workflow"]["status"] == "published"


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_knowledge_add_search_and_delete(platform: Platform) -> None:
    source = f"manual-{secrets.token_hex(3)}"
    old = datetime.now(UTC) - timedelta(days=30)
    sent = {
        "content": "To descale the espresso machine, run citric acid through the boiler twice.",
        "source": source,
        "metadata": {"lang": "en"},
        "timestamp": rfc3339(old),
    }
    status, headers, added = request(platform.gateway, "POST", "/api/v1/knowledge", sent)
    assert status == 201 and headers["content-type"].startswith("application/json"), added
    assert added["chunk_count"] == 1 and added["indexed"] is True
    query = {"query": "clean limescale out of the coffee maker", "source": source}
    status, _, found = request(platform.gateway, "POST", "/api/v1/knowledge/search", query)
    assert status == 200, found
    chunk = found["results"][0]["chunk"]
    assert (chunk["document_id"], chunk["source"], chunk["metadata"]) == (added["document_id"], source, {"lang": "en"})
    status, _, recent = request(
        platform.gateway, "POST", "/api/v1/knowledge/search", {**query, "from": rfc3339(old + timedelta(days=1))}
    )
    assert status == 200 and recent.get("results", []) == [], recent
    status, _, reply = request(platform.gateway, "DELETE", f"/api/v1/knowledge/{added['document_id']}")
    assert status == 204, reply
    status, _, found = request(platform.gateway, "POST", "/api/v1/knowledge/search", query)
    assert status == 200 and found.get("results", []) == [], found
    status, headers, reply = request(platform.gateway, "DELETE", f"/api/v1/knowledge/{added['document_id']}")
    assert_error(status, headers, reply, 404, added["document_id"])


async def test_search_over_grpc_through_envoy(platform: Platform, agents: dict[str, dict[str, Any]]) -> None:
    top_agent(platform, "is the mountain about to erupt", agents["volcano"]["id"])
    async with platform.channel() as channel:
        stub = search_pb2_grpc.SearchServiceStub(channel)
        reply = await stub.SearchAgents(search_pb2.SearchAgentsRequest(query="is the mountain about to erupt", limit=1))
    assert [r.agent.id for r in reply.results] == [agents["volcano"]["id"]]


def test_ossa_reindex_rebuilds_and_prints_counts(platform: Platform, agents: dict[str, dict[str, Any]]) -> None:
    proc = subprocess.run(
        [ossa_executable(), "reindex", "--gateway", platform.gateway, "--data-dir", str(platform.data_dir)],
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("reindexed ") and "agents" in proc.stdout and "knowledge chunks" in proc.stdout
    for query, job in QUERIES.items():
        assert top_agent(platform, query, agents[job]["id"], among=own(agents))["agent"]["id"] == agents[job]["id"]
    status, headers, body = request(platform.gateway, "POST", "/api/v1/search/reindex", {}, token="")
    assert_error(status, headers, body, 401)


def test_health_report_covers_search(platform: Platform) -> None:
    status, _, body = request(platform.gateway, "GET", "/api/v1/health")
    assert status == 200, body
    states = {c["name"]: c["state"] for c in body["components"]}
    assert states.get("search") == "healthy", body
