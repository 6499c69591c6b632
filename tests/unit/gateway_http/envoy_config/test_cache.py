"""The gateway's REST read cache (gateway_http/envoy_config/cache.py) in the rendered Envoy config.

The config is checked with `envoy --mode validate`, then a real Envoy runs in front of a gRPC stub
that counts its calls and echoes the caller's `authorization`: repeated GETs are answered by Envoy
(`x-ossa-cache`, no call), each credential has its own entries, a change shows within the 1 s bound, a
consistency token or `cache-control: no-cache` reaches the service, writes return a token, and
errors, credential-less calls and forged `x-ossa-credential` headers are never served from cache.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from importlib.resources import files
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from gateway_http.envoy_config import cache
from gateway_http.envoy_config.binary import validate_envoy_config
from gateway_http.envoy_config.render import render_envoy_config
from ossa.registry.v1 import registry_pb2, registry_pb2_grpc
from tests.envoy import envoy_running
from tests.unit.gateway_http.envoy_config.test_render import free_port, make_settings

AGENT_ID = "00000000-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def descriptor() -> bytes:
    return files("ossa").joinpath("ossa.binpb").read_bytes()


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    path = render_envoy_config(make_settings(tmp_path), tmp_path / "envoy")
    validate_envoy_config(path)
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def _managers(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        listener["name"]: listener["filter_chains"][0]["filters"][0]["typed_config"]
        for listener in config["static_resources"]["listeners"]
    }


def test_cacheable_methods_are_the_reads_of_the_issue(descriptor: bytes) -> None:
    paths = cache.cacheable_paths(descriptor)
    assert sorted(paths.values()) == [
        "/api/v1/agents",
        "/api/v1/agents/{agent_id}",
        "/api/v1/executions",
        "/api/v1/executions/{execution_id}",
        "/api/v1/executions/{execution_id}/tasks",
        "/api/v1/workflows",
        "/api/v1/workflows/{workflow_id}",
    ]
    assert cache.path_regex("/api/v1/executions/{execution_id}/tasks") == "/api/v1/executions/[^/]+/tasks"


def test_front_chain_and_internal_origin(config: dict[str, Any]) -> None:
    managers = _managers(config)
    assert list(managers) == ["gateway", cache.ORIGIN]
    front, origin = managers["gateway"], managers[cache.ORIGIN]
    names = [f["name"] for f in front["http_filters"]]
    assert names[:4] == [cache.CACHE_STATUS_FILTER, cache.CREDENTIAL_OUT, cache.CACHE_FILTER, cache.CREDENTIAL_IN]
    # Misses skip the rest of the front chain: they go to the internal listener.
    wrapped = front["http_filters"][2]["typed_config"]["extension_config"]["typed_config"]
    assert wrapped["override_upstream_cluster"] == cache.ORIGIN
    # The origin: today's chain behind the credential restore, no second access log line.
    assert [f["name"] for f in origin["http_filters"]] == [cache.CREDENTIAL_IN, *names[4:]]
    assert "access_log" not in origin and origin["use_remote_address"] is False
    added = {
        h["header"]["key"]: h["header"]["value"]
        for h in origin["route_config"]["virtual_hosts"][0]["response_headers_to_add"]
    }
    # No `vary` (Envoy would not store the reply); `age: 1` drops entries at the next whole second.
    assert added == {"cache-control": "max-age=1", "age": "1"}
    (origin_listener,) = [x for x in config["static_resources"]["listeners"] if x["name"] == cache.ORIGIN]
    assert origin_listener["internal_listener"] == {}
    assert any(e["name"] == "envoy.bootstrap.internal_listener" for e in config["bootstrap_extensions"])


def test_cache_routes_follow_the_files_envoy_serves(config: dict[str, Any]) -> None:
    routes = _managers(config)["gateway"]["route_config"]["virtual_hosts"][0]["routes"]
    cached = [i for i, r in enumerate(routes) if r.get("name", "").startswith("cache:")]
    assert len(cached) == len(cache.CACHEABLE_METHODS)
    assert all("direct_response" in r for r in routes[: cached[0]])
    for i in cached:
        route = routes[i]
        assert route["route"]["cluster"] == cache.ORIGIN
        headers = {h["name"]: h for h in route["match"]["headers"]}
        assert headers[":method"]["string_match"] == {"exact": "GET"}
        assert headers[cache.CONSISTENCY_HEADER]["invert_match"] is True  # a token bypasses the cache
        assert set(route["typed_per_filter_config"]) == {
            cache.CREDENTIAL_OUT,
            cache.CREDENTIAL_IN,
            cache.CACHE_STATUS_FILTER,
        }


def test_envoy_validate_refuses_a_broken_cache_config(tmp_path: Path) -> None:
    path = render_envoy_config(make_settings(tmp_path), tmp_path / "envoy")
    path.write_text(path.read_text().replace("override_upstream_cluster", "override_upstream_clusterz"))
    with pytest.raises(ValueError, match="override_upstream_clusterz"):
        validate_envoy_config(path)


# A real Envoy in front of a counting stub --------------------------------------------------------


class _CountingRegistry(registry_pb2_grpc.AgentRegistryServiceServicer):
    def __init__(self) -> None:
        self.calls = 0
        self.version = 0
        self.last_name = ""
        self.lock = threading.Lock()

    def _caller(self, context: Any) -> str:
        auth = dict(context.invocation_metadata()).get("authorization", "")
        if not auth:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")
        if dict(context.invocation_metadata()).get(cache.CREDENTIAL_HEADER):
            context.abort(grpc.StatusCode.INTERNAL, "x-ossa-credential reached the service")
        return str(auth)

    def ListAgents(self, request: Any, context: Any) -> Any:
        with self.lock:
            self.calls += 1
            self.last_name = request.name
        caller = self._caller(context)
        if caller == "Bearer viewer" and request.status:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "viewer may not filter")
        agent = registry_pb2.Agent(id=AGENT_ID, name=f"v{self.version}-{caller.split()[-1]}", version="1.0.0")
        return registry_pb2.ListAgentsResponse(agents=[agent])

    def GetAgent(self, request: Any, context: Any) -> Any:
        with self.lock:
            self.calls += 1
        self._caller(context)
        context.abort(grpc.StatusCode.NOT_FOUND, f"agent {request.agent_id} not found")

    def DeleteAgent(self, request: Any, context: Any) -> Any:
        self._caller(context)
        self.version += 1
        return registry_pb2.DeleteAgentResponse()  # 204 over REST: the route's http_status


@pytest.fixture
def stub_gateway(tmp_path: Path) -> Iterator[tuple[str, _CountingRegistry]]:
    stub = _CountingRegistry()
    # The services accept 128 KiB of metadata (ossa_runtime/limits.py); grpcio defaults to 16 KiB.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.max_metadata_size", 128 * 1024)])
    registry_pb2_grpc.add_AgentRegistryServiceServicer_to_server(stub, server)  # type: ignore[no-untyped-call]
    registry_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    settings = make_settings(
        tmp_path, gateway_port=free_port(), envoy_admin_port=free_port(), registry_port=registry_port
    )
    config = render_envoy_config(settings, tmp_path / "envoy")
    try:
        with envoy_running(config, settings.envoy_admin_port, tmp_path / "envoy.log"):
            yield f"127.0.0.1:{settings.gateway_port}", stub
    finally:
        server.stop(None)


def _get(gateway: str, path: str, token: str | None = "admin", **headers: str) -> tuple[int, dict[str, str], Any]:
    host, port = gateway.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
        if token is not None:
            hdrs["authorization"] = f"Bearer {token}"
        method = hdrs.pop("method", "GET")
        conn.request(method, path, headers=hdrs)
        response = conn.getresponse()
        raw = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(raw) if raw else None
    finally:
        conn.close()


def hit(headers: dict[str, str]) -> bool:
    """Answered from Envoy's cache (`age` is on every cacheable reply, so it does not tell)."""
    return headers.get(cache.CACHE_STATUS_HEADER) == cache.CACHE_HIT


def _fresh_second() -> None:
    """Sleep to just after a wall-clock second starts: a reply cached now lives ~1 s (Date has 1 s
    resolution), so two calls right after each other are not split by an expiry."""
    time.sleep(1.02 - time.time() % 1)


def test_repeated_reads_are_answered_by_envoy(stub_gateway: tuple[str, _CountingRegistry]) -> None:
    gateway, stub = stub_gateway
    _fresh_second()
    status, headers, body = _get(gateway, "/api/v1/agents?type=worker")
    assert status == 200 and body[0]["name"] == "v0-admin"
    assert headers["cache-control"] == "max-age=1"
    calls = stub.calls
    status, headers, again = _get(gateway, "/api/v1/agents?type=worker")
    assert status == 200 and again == body
    assert hit(headers)  # served from Envoy's cache
    assert stub.calls == calls
    # Another query string is another entry.
    assert _get(gateway, "/api/v1/agents?status=idle")[0] == 200
    assert stub.calls == calls + 1


def test_each_credential_has_its_own_entries(stub_gateway: tuple[str, _CountingRegistry]) -> None:
    gateway, _stub = stub_gateway
    _fresh_second()
    assert _get(gateway, "/api/v1/agents?status=idle")[2][0]["name"] == "v0-admin"
    status, headers, body = _get(gateway, "/api/v1/agents?status=idle", token="viewer")
    assert status == 403 and body["code"] == 7 and not hit(headers)  # not the admin's reply
    status, headers, body = _get(gateway, "/api/v1/agents?status=idle", token="viewer")
    assert status == 403 and not hit(headers)  # a 403 is never stored
    assert _get(gateway, "/api/v1/agents", token="other")[2][0]["name"] == "v0-other"


def test_no_credential_is_never_cached_and_a_forged_credential_header_is_dropped(
    stub_gateway: tuple[str, _CountingRegistry],
) -> None:
    gateway, _stub = stub_gateway
    for _ in range(2):
        status, headers, body = _get(gateway, "/api/v1/agents", token=None)
        assert status == 401 and not hit(headers), (status, body)
    # A client cannot pose as someone through the private header: it is removed before the cache.
    _fresh_second()
    assert _get(gateway, "/api/v1/agents")[0] == 200
    status, headers, _ = _get(gateway, "/api/v1/agents", token=None, x_ossa_credential="Bearer admin")
    assert status == 401 and not hit(headers)
    # Nor through the cache key's query parameter.
    status, headers, _ = _get(gateway, "/api/v1/agents?ossa_credential=Bearer%20admin", token=None)
    assert status == 401 and not hit(headers)


def test_changes_show_within_the_bound_and_the_writer_reads_its_write(
    stub_gateway: tuple[str, _CountingRegistry],
) -> None:
    gateway, _stub = stub_gateway
    _fresh_second()
    assert _get(gateway, "/api/v1/agents")[2][0]["name"] == "v0-admin"
    status, headers, _ = _get(gateway, f"/api/v1/agents/{AGENT_ID}", method="DELETE")
    changed_at = time.monotonic()
    assert status == 204
    token = headers[cache.CONSISTENCY_HEADER]
    assert re.fullmatch(r"[0-9a-f-]{36}", token)  # unique per write (the request id)
    # The writer, sending its token, reads its own write at once.
    status, headers, body = _get(gateway, "/api/v1/agents", x_ossa_consistency=token)
    assert body[0]["name"] == "v1-admin" and not hit(headers)
    # So does anyone asking the cache to revalidate.
    assert _get(gateway, "/api/v1/agents", cache_control="no-cache")[2][0]["name"] == "v1-admin"
    # Everyone else within the bound (1 s; the margin is for a busy machine, not for the cache).
    while _get(gateway, "/api/v1/agents")[2][0]["name"] != "v1-admin":
        assert time.monotonic() - changed_at < cache.MAX_AGE_SECONDS + 0.5
        time.sleep(0.02)


class _Now:
    """Formats as the current time: the stub's replies then say when the service produced them."""

    def __format__(self, spec: str) -> str:
        return f"{time.time():.4f}"


def test_no_hit_is_older_than_the_bound(stub_gateway: tuple[str, _CountingRegistry]) -> None:
    gateway, stub = stub_gateway
    stub.version = _Now()  # type: ignore[assignment]
    worst, hits, deadline = 0.0, 0, time.monotonic() + 3.5
    while time.monotonic() < deadline:
        _, headers, body = _get(gateway, "/api/v1/agents?limit=9")
        if hit(headers):
            hits += 1
            worst = max(worst, time.time() - float(body[0]["name"].split("-")[0][1:]))
        time.sleep(0.004)
    assert hits > 0
    # The bound, plus what one request's own round trip adds on a busy machine.
    assert worst < cache.MAX_AGE_SECONDS + 0.1, worst


def test_not_found_is_cached_no_longer_than_the_bound(stub_gateway: tuple[str, _CountingRegistry]) -> None:
    gateway, stub = stub_gateway
    path = "/api/v1/agents/00000000-0000-4000-8000-00000000abcd"
    assert _get(gateway, path)[0] == 404
    deadline = time.monotonic() + cache.MAX_AGE_SECONDS + 0.5
    calls = stub.calls
    while stub.calls == calls:
        assert time.monotonic() < deadline, "a 404 outlived the cache bound"
        assert _get(gateway, path)[0] == 404
        time.sleep(0.02)


def test_writes_and_grpc_calls_skip_the_cache(stub_gateway: tuple[str, _CountingRegistry]) -> None:
    gateway, stub = stub_gateway
    status, headers, _ = _get(gateway, f"/api/v1/agents/{AGENT_ID}", method="DELETE")
    assert status == 204 and "cache-control" not in headers and cache.CONSISTENCY_HEADER in headers
    host, port = gateway.split(":")
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        stub_client = registry_pb2_grpc.AgentRegistryServiceStub(channel)  # type: ignore[no-untyped-call]
        metadata = (("authorization", "Bearer admin"),)
        calls = stub.calls
        for _ in range(2):
            reply = stub_client.ListAgents(registry_pb2.ListAgentsRequest(), metadata=metadata, timeout=5)
            assert reply.agents[0].name.endswith("-admin")
        assert stub.calls == calls + 2


def test_the_query_reaches_the_service_as_sent(stub_gateway: tuple[str, _CountingRegistry]) -> None:
    gateway, stub = stub_gateway
    # Escapes stay escapes (the credential is appended to the raw query, nothing is re-encoded).
    assert _get(gateway, "/api/v1/agents?name=a%26b%3Dc%20d")[0] == 200
    assert stub.last_name == "a&b=c d"
    status, _, body = _get(gateway, "/api/v1/agents?name=a%00b")
    assert status != 503 and "invalid header" not in str(body), body
    # A client's own key parameter is neither a field nor a way into someone else's entry.
    assert _get(gateway, "/api/v1/agents?ossa_credential=x")[0] == 200
    # A request near the header limit is not pushed over it by the key.
    status, _, body = _get(gateway, "/api/v1/agents?name=" + "x" * 20_000)
    assert status == 200 and stub.last_name == "x" * 20_000, (status, body)
