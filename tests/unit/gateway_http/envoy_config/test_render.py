"""The rendered Envoy bootstrap (gateway_http/envoy_config/render.py + envoy/envoy.yaml + envoy/status.lua).

`envoy --mode validate` checks the whole file offline in well under a second: field names,
the proto descriptor, the transcoder's service names, the Lua script's syntax. One test also
runs Envoy for real in front of a tiny gRPC stub to pin the behaviour the Lua filter adds.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from concurrent import futures
from importlib.resources import files
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.api import annotations_pb2
from google.protobuf import any_pb2, descriptor_pb2
from google.rpc import error_details_pb2, status_pb2

from gateway_http.envoy_config.binary import find_envoy, validate_envoy_config
from gateway_http.envoy_config.descriptor import descriptor_bytes, grpc_methods, ossa_services
from gateway_http.envoy_config.render import HTTP_TO_GRPC, LIMIT_MESSAGES, render_envoy_config
from gateway_http.envoy_config.streams import STREAM_CLUSTERS
from gateway_http.openapi_tables import success_status
from ossa.registry.v1 import registry_pb2, registry_pb2_grpc
from ossa_runtime import limits
from ossa_runtime.settings import Settings
from tests.envoy import envoy_running
from tests.uploads import upload

FDP = descriptor_pb2.FieldDescriptorProto
TRANSCODER = "envoy.filters.http.grpc_json_transcoder"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_settings(tmp_path: Path, **ports: int) -> Settings:
    env = {
        "OSSA_DATA_DIR": str(tmp_path),
        "OSSA_GATEWAY_HOST": "127.0.0.1",
        "OSSA_GATEWAY_PORT": "13100",
        "OSSA_ENVOY_ADMIN_PORT": "19901",
        "OSSA_REGISTRY_PORT": "13011",
        "OSSA_GATEWAY_GRPC_PORT": "13010",
    }
    env.update({f"OSSA_{name.upper()}": str(value) for name, value in ports.items()})
    return Settings.from_env(env)


def load(path: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    return config


def hcm(config: dict[str, Any]) -> dict[str, Any]:
    listener = config["static_resources"]["listeners"][0]  # the gateway (then the cache's origin)
    manager: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return manager


def http_filter(config: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(f for f in hcm(config)["http_filters"] if f["name"] == name)["typed_config"]
    return found


def routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = hcm(config)["route_config"]["virtual_hosts"][0]["routes"]
    return found


def clusters(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in config["static_resources"]["clusters"]}


def endpoints(cluster: dict[str, Any]) -> list[tuple[str, int]]:
    return [
        (
            e["endpoint"]["address"]["socket_address"]["address"],
            e["endpoint"]["address"]["socket_address"]["port_value"],
        )
        for group in cluster["load_assignment"]["endpoints"]
        for e in group["lb_endpoints"]
    ]


@pytest.fixture(scope="module")
def descriptor() -> bytes:
    return files("ossa").joinpath("ossa.binpb").read_bytes()


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    return render_envoy_config(make_settings(tmp_path), tmp_path / "envoy")


def test_rendered_config_passes_envoy_validate(rendered: Path) -> None:
    validate_envoy_config(rendered)


def test_envoy_validate_catches_a_broken_config(rendered: Path) -> None:
    rendered.write_text(rendered.read_text().replace("convert_grpc_status", "convert_grpc_statuz"))
    with pytest.raises(ValueError, match="convert_grpc_statuz"):
        validate_envoy_config(rendered)


def test_listener_admin_and_filter_order(rendered: Path) -> None:
    config = load(rendered)
    assert config["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 19901}
    listener = config["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 13100}
    manager = hcm(config)
    assert manager["codec_type"] == "AUTO"  # HTTP/1.1 and h2c (gRPC clients) on one port
    assert [f["name"] for f in manager["http_filters"]] == [
        "ossa.cache_status",  # the REST read cache (test_cache.py)
        "ossa.credential_out",
        "ossa.rest_cache",
        "ossa.credential_in",
        "envoy.filters.http.lua",
        "ossa.rest_body_limit",
        TRANSCODER,
        "envoy.filters.http.router",
    ]


def test_request_limits(rendered: Path) -> None:
    manager = hcm(load(rendered))
    assert manager["max_request_headers_kb"] == limits.HTTP_MAX_HEADERS_KB
    body_limit = next(f for f in manager["http_filters"] if f["name"] == "ossa.rest_body_limit")["typed_config"]
    assert body_limit["extension_config"]["typed_config"]["max_request_bytes"] == limits.HTTP_MAX_BODY_BYTES
    (skip_grpc,) = body_limit["xds_matcher"]["matcher_list"]["matchers"]
    predicate = skip_grpc["predicate"]["single_predicate"]
    assert predicate["input"]["typed_config"]["header_name"] == "content-type"
    assert predicate["value_match"] == {"prefix": "application/grpc"}
    assert skip_grpc["on_match"]["action"]["typed_config"]["@type"].endswith("SkipFilter")
    assert http_filter(load(rendered), TRANSCODER)["max_request_body_size"] == limits.HTTP_MAX_BODY_BYTES


def test_transcoder_serves_every_ossa_service(rendered: Path, descriptor: bytes) -> None:
    transcoder = http_filter(load(rendered), TRANSCODER)
    assert transcoder["services"] == ossa_services(descriptor)
    assert set(transcoder["services"]) >= {"ossa.registry.v1.AgentRegistryService", "ossa.gateway.v1.GatewayService"}
    assert transcoder["print_options"] == {
        "always_print_primitive_fields": True,
        "preserve_proto_field_names": True,
        "add_whitespace": False,
        "stream_sse_style_delimited": True,  # WatchExecution's REST form: server-sent events
    }
    assert transcoder["convert_grpc_status"] is True
    assert transcoder["request_validation_options"] == {
        "reject_unknown_method": True,
        "reject_unknown_query_parameters": True,
    }
    assert "case_insensitive_enum_parsing" not in transcoder  # enum value names are lowercase


def test_files_are_copied_next_to_the_config(rendered: Path) -> None:
    config = load(rendered)
    lua = Path(http_filter(config, "envoy.filters.http.lua")["default_source_code"]["filename"])
    assert lua.parent == rendered.parent
    assert lua.read_bytes() == files("ossa_envoy").joinpath("status.lua").read_bytes()
    (openapi_route,) = [r for r in routes(config) if r["match"].get("path") == "/api/v1/openapi.json"]
    openapi = Path(openapi_route["direct_response"]["body"]["filename"])
    assert openapi.read_bytes() == files("ossa").joinpath("openapi.json").read_bytes()
    assert hcm(config)["route_config"]["max_direct_response_body_size_bytes"] >= openapi.stat().st_size
    descriptor_path = Path(http_filter(config, TRANSCODER)["proto_descriptor"])
    assert descriptor_path.parent == rendered.parent


def test_descriptor_for_envoy_has_no_response_body(rendered: Path, descriptor: bytes) -> None:
    def rules(data: bytes) -> dict[str, str]:
        fds = descriptor_pb2.FileDescriptorSet.FromString(data)
        return {
            f"{s.name}.{m.name}": m.options.Extensions[annotations_pb2.http].response_body
            for f in fds.file
            for s in f.service
            for m in s.method
        }

    assert rules(descriptor)["AgentRegistryService.ListAgents"] == "agents"
    stripped = rules((rendered.parent / "ossa.binpb").read_bytes())
    assert set(stripped) == set(rules(descriptor)) and not any(stripped.values())


def by_path_of(table: list[Any]) -> dict[str, Any]:
    return {r["match"]["path"]: r for r in table if "path" in r["match"]}


def test_routes(rendered: Path) -> None:
    table = routes(load(rendered))
    first = table[0]
    assert first["match"]["path"] == "/api/v1/openapi.json"
    assert first["typed_per_filter_config"][TRANSCODER]["disabled"] is True
    assert first["response_headers_to_add"][0]["header"] == {"key": "content-type", "value": "application/json"}
    by_prefix = {r["match"]["prefix"]: r["route"]["cluster"] for r in table if "prefix" in r["match"]}
    assert by_prefix == {
        "/ossa.registry.v1.": "registry",
        "/ossa.gateway.v1.": "gateway",
        "/ossa.auth.v1.": "gateway",  # sessions and API keys live in the gateway process
        "/ossa.orchestrator.v1.": "orchestrator",
        "/ossa.monitoring.v1.": "monitoring",
        "/ossa.search.v1.": "search",
        "/grpc.health.v1.Health/": "gateway",
    }
    # A method with a response_body in ossa.auth.v1 gets its Lua route on the gateway cluster.
    list_keys = by_path_of(table)["/ossa.auth.v1.AuthService/ListApiKeys"]
    assert list_keys["route"]["cluster"] == "gateway"
    assert list_keys["metadata"]["filter_metadata"]["envoy.filters.http.lua"]["response_body"] == "api_keys"
    by_path = {r["match"]["path"]: r for r in table if "path" in r["match"]}
    heartbeat = by_path["/ossa.registry.v1.AgentRegistryService/Heartbeat"]["route"]
    # A long bidi stream, on the registry's streams cluster (streams.py: not counted with the calls).
    assert heartbeat == {"cluster": "registry_streams", "timeout": "0s", "idle_timeout": "0s"}
    work = by_path["/ossa.orchestrator.v1.OrchestratorService/Work"]["route"]
    assert work["cluster"] == "orchestrator_streams"
    start = by_path.get("/ossa.orchestrator.v1.OrchestratorService/StartExecution", {"route": {}})["route"]
    assert start.get("cluster", "orchestrator") == "orchestrator"  # a call: balanced among calls
    for method, field in [("CreateAgent", "agent"), ("ListAgents", "agents"), ("GetAgent", "agent")]:
        route = by_path[f"/ossa.registry.v1.AgentRegistryService/{method}"]
        assert route["route"]["timeout"] != "0s"
        lua = route["metadata"]["filter_metadata"]["envoy.filters.http.lua"]
        lua.pop("http_status", None)  # CreateAgent's 201 (test_methods_with_another_success_status...)
        assert lua == {"response_body": field, "response_body_sole": True}  # the reply is {"<field>": X}
    assert by_path["/ossa.search.v1.SearchService/Reindex"]["route"]["timeout"] == "600s"  # SLOW_METHODS
    unary = [r["route"] for r in table if r["match"].get("prefix", "").startswith("/ossa.")]
    assert len(unary) == 6 and all(r["timeout"] == "15s" and r["retry_policy"] for r in unary)


def test_methods_with_another_success_status_have_it_on_their_route(rendered: Path) -> None:
    by_path = by_path_of(routes(load(rendered)))
    expected = {m.path: success_status(f"{m.service}.{m.name}") for m in grpc_methods(descriptor_bytes())}
    assert set(expected.values()) == {200, 201, 202, 204}
    for path, status in expected.items():
        route = by_path.get(path)
        lua = route["metadata"]["filter_metadata"]["envoy.filters.http.lua"] if route and "metadata" in route else {}
        if status == 200:
            assert "http_status" not in lua, path
            continue
        assert route is not None and lua["http_status"] == status, path
        assert route["route"]["timeout"] == "15s" and route["route"]["retry_policy"], path  # as by prefix
    create = by_path["/ossa.registry.v1.AgentRegistryService/CreateAgent"]["metadata"]["filter_metadata"]
    assert create["envoy.filters.http.lua"]["response_body"] == "agent"  # a route with both keys
    assert expected["/ossa.orchestrator.v1.OrchestratorService/StartExecution"] == 202
    assert expected["/ossa.search.v1.SearchService/DeleteKnowledge"] == 204  # the Delete* rule


def test_reply_with_more_fields_is_scanned(tmp_path: Path, descriptor: bytes) -> None:
    path = render_envoy_config(make_settings(tmp_path), tmp_path / "envoy", descriptor=_with_page_token(descriptor))
    by_path = {r["match"]["path"]: r for r in routes(load(path)) if "path" in r["match"] and "route" in r}
    lua = by_path["/ossa.registry.v1.AgentRegistryService/ListAgents"]["metadata"]["filter_metadata"]
    assert lua == {"envoy.filters.http.lua": {"response_body": "agents"}}


def test_clusters_speak_http2_to_the_services(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, orchestrator_port=23012, monitoring_port=23013, gateway_grpc_port=23010)
    workers = {"registry": [("127.0.0.1", 23011), ("127.0.0.1", 23111)], "orchestrator": [("0.0.0.0", 23112)]}
    path = render_envoy_config(settings, tmp_path / "envoy", targets=workers)
    found = clusters(load(path))
    assert found.pop("rest_cache_origin")  # the read cache's internal listener (test_cache.py)
    streams = {found.pop(c) and c for c in ("registry_streams", "orchestrator_streams")}  # streams.py
    assert streams == {"registry_streams", "orchestrator_streams"}
    assert set(found) == {"registry", "gateway", "orchestrator", "monitoring", "search"}
    assert endpoints(found["registry"]) == [("127.0.0.1", 23011), ("127.0.0.1", 23111)]
    assert endpoints(found["gateway"]) == [("127.0.0.1", 23010)]
    assert endpoints(found["orchestrator"]) == [("127.0.0.1", 23112)]  # a worker's port, dialled on loopback
    for name in ("registry", "orchestrator"):  # the worker with the fewest in flight, every one compared
        (policy,) = found[name]["load_balancing_policy"]["policies"]
        assert policy["typed_extension_config"]["typed_config"]["selection_method"] == "FULL_SCAN"
    assert endpoints(found["monitoring"]) == [("127.0.0.1", 23013)]
    assert endpoints(found["search"]) == [("127.0.0.1", settings.search_port)]
    for cluster in found.values():
        options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
        assert "http2_protocol_options" in options["explicit_http_config"]
        assert cluster["type"] == "STATIC"


def test_wildcard_and_named_hosts(tmp_path: Path) -> None:
    settings = make_settings(tmp_path).replace(host="0.0.0.0", gateway_host="0.0.0.0")
    path = render_envoy_config(settings, tmp_path / "envoy", targets={"registry": [("localhost", 3011)]})
    config = load(path)
    found = clusters(config)
    assert endpoints(found["gateway"]) == [("127.0.0.1", 13010)]  # dial loopback, not the wildcard
    assert endpoints(found["orchestrator"]) == [("127.0.0.1", settings.orchestrator_port)]
    assert found["registry"]["type"] == "STRICT_DNS" and endpoints(found["registry"]) == [("localhost", 3011)]
    assert config["static_resources"]["listeners"][0]["address"]["socket_address"]["address"] == "0.0.0.0"
    validate_envoy_config(path)


def test_local_replies_use_the_error_shape(rendered: Path) -> None:
    mappers = hcm(load(rendered))["local_reply_config"]["mappers"]
    codes = {}
    for mapper in mappers:
        body = mapper["body_format_override"]
        assert body["content_type"] == "application/json"
        assert set(body["json_format"]) == {"code", "message", "details"} and body["json_format"]["details"] == []
        filters = mapper["filter"]["and_filter"]["filters"]
        assert "or_filter" in filters[0]  # gRPC clients are left alone
        comparison = filters[1]["status_code_filter"]["comparison"]
        codes[(comparison["op"], comparison["value"]["default_value"])] = body["json_format"]["code"]
        message = body["json_format"]["message"]
        assert message in ("%LOCAL_REPLY_BODY%", *LIMIT_MESSAGES.values()) or message.startswith("no route for ")
    assert codes == {**{("EQ", http): grpc for http, grpc in HTTP_TO_GRPC.items()}, ("GE", 400): 2}
    assert HTTP_TO_GRPC[400] == 3 and HTTP_TO_GRPC[404] == 5 and HTTP_TO_GRPC[503] == 14 and HTTP_TO_GRPC[504] == 4


def test_rendering_twice_leaves_files_alone(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    first = render_envoy_config(settings, tmp_path / "envoy")
    stamps = {p.name: p.stat().st_mtime_ns for p in first.parent.iterdir()}
    time.sleep(0.01)
    second = render_envoy_config(settings, tmp_path / "envoy")
    assert first == second
    assert {p.name: p.stat().st_mtime_ns for p in second.parent.iterdir()} == stamps
    assert sorted(stamps) == ["console", "envoy.yaml", "openapi.json", "ossa.binpb", "status.lua"]


def _example_file() -> descriptor_pb2.FileDescriptorProto:
    """A service added next to the real MonitoringService (same package, so the same cluster)."""
    f = descriptor_pb2.FileDescriptorProto(
        name="ossa/monitoring/v1/example.proto", package="ossa.monitoring.v1", syntax="proto3"
    )
    f.message_type.add(name="ExampleRequest").field.add(
        name="goal", number=1, type=FDP.TYPE_STRING, label=FDP.LABEL_OPTIONAL
    )
    f.message_type.add(name="ExampleResponse").field.add(
        name="workflow_id", number=1, type=FDP.TYPE_STRING, label=FDP.LABEL_OPTIONAL
    )
    service = f.service.add(name="ExampleService")
    push = service.method.add(
        name="Push",
        input_type=".ossa.monitoring.v1.ExampleRequest",
        output_type=".ossa.monitoring.v1.ExampleResponse",
    )
    rule = push.options.Extensions[annotations_pb2.http]
    rule.post, rule.body = "/api/v1/examples", "*"
    service.method.add(
        name="Watch",
        input_type=".ossa.monitoring.v1.ExampleRequest",
        output_type=".ossa.monitoring.v1.ExampleResponse",
        server_streaming=True,
    )
    return f


def test_new_services_in_the_descriptor_are_served(tmp_path: Path, descriptor: bytes) -> None:
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor)
    fds.file.append(_example_file())
    path = render_envoy_config(make_settings(tmp_path), tmp_path / "envoy", descriptor=fds.SerializeToString())
    validate_envoy_config(path)  # Envoy resolves every listed service in the descriptor
    config = load(path)
    services = http_filter(config, TRANSCODER)["services"]
    assert {"ossa.monitoring.v1.ExampleService", "ossa.monitoring.v1.MonitoringService"} <= set(services)
    by_path = {r["match"]["path"]: r["route"] for r in routes(config) if "path" in r["match"] and "route" in r}
    assert by_path["/ossa.monitoring.v1.ExampleService/Watch"] == {
        "cluster": "monitoring",
        "timeout": "0s",
        "idle_timeout": "0s",
    }


def test_envoy_binary_is_found() -> None:
    assert Path(find_envoy()).is_file()


# Envoy for real, in front of a stub registry ---------------------------------------------------


def _agent(name: str) -> registry_pb2.Agent:
    return registry_pb2.Agent(
        id="00000000-0000-4000-8000-000000000001",
        name=name,
        type=registry_pb2.AgentType.worker,
        version="1.0.0",
        status=registry_pb2.AgentStatus.idle,
        capabilities=["a]b}c", 'd"e'],
    )


class _StubRegistry(registry_pb2_grpc.AgentRegistryServiceServicer):
    # The statuses come from the routes' `http_status` (201, 204), as with the real services; the
    # stub sends `x-http-code` (a status that depends on the reply) only for name "accepted".
    def CreateAgent(self, request: Any, context: Any) -> Any:
        if request.name == "accepted":
            context.send_initial_metadata((("x-http-code", "202"),))
        if request.name == "taken":  # the route says 201: an error must stay a 409
            context.abort(grpc.StatusCode.ALREADY_EXISTS, "agent name taken is in use")
        return registry_pb2.CreateAgentResponse(agent=_agent(request.name))

    def ListAgents(self, request: Any, context: Any) -> Any:
        return registry_pb2.ListAgentsResponse(agents=[_agent('x"},{"agents":[]'), _agent("y")])

    def GetAgent(self, request: Any, context: Any) -> Any:
        status = status_pb2.Status(
            code=grpc.StatusCode.NOT_FOUND.value[0], message=f"agent {request.agent_id} not found"
        )
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[error_details_pb2.BadRequest.FieldViolation(field="agent_id", description="unknown")]
            )
        )
        status.details.append(detail)
        context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
        context.abort(grpc.StatusCode.NOT_FOUND, status.message)

    def DeleteAgent(self, request: Any, context: Any) -> Any:
        return registry_pb2.DeleteAgentResponse()


def _with_page_token(descriptor: bytes) -> bytes:
    """ListAgentsResponse plus a field the stub never sets (Envoy prints it anyway): the Lua filter
    must then find `agents` by scanning the JSON instead of cutting the {"agents": ...} wrapper."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor)
    files = [f for f in fds.file if f.package == "ossa.registry.v1"]  # registry.proto, card.proto
    (reply,) = [m for f in files for m in f.message_type if m.name == "ListAgentsResponse"]
    reply.field.add(name="next_page_token", number=2, type=FDP.TYPE_STRING, label=FDP.LABEL_OPTIONAL)
    return fds.SerializeToString()


@pytest.fixture
def gateway(tmp_path: Path, descriptor: bytes) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    registry_pb2_grpc.add_AgentRegistryServiceServicer_to_server(_StubRegistry(), server)
    registry_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    settings = make_settings(
        tmp_path,
        gateway_port=free_port(),
        envoy_admin_port=free_port(),
        registry_port=registry_port,
        gateway_grpc_port=free_port(),  # nothing listens: the gateway cluster is down
    )
    config = render_envoy_config(settings, tmp_path / "envoy", descriptor=_with_page_token(descriptor))
    try:
        with envoy_running(config, settings.envoy_admin_port, tmp_path / "envoy.log"):
            yield f"127.0.0.1:{settings.gateway_port}"
    finally:
        server.stop(None)


def _call(
    conn: http.client.HTTPConnection, method: str, path: str, body: Any = None
) -> tuple[int, dict[str, str], Any]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    conn.request(method, path, body=data, headers={"content-type": "application/json"} if data else {})
    response = conn.getresponse()
    raw = response.read()
    headers = {k.lower(): v for k, v in response.getheaders()}
    return response.status, headers, json.loads(raw) if raw else None


def test_envoy_statuses_bodies_and_errors(gateway: str) -> None:
    host, port = gateway.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        status, headers, body = _call(conn, "POST", "/api/v1/agents", {"name": "n", "type": "worker", "version": "1"})
        assert status == 201 and body["name"] == "n" and body["type"] == "worker", body  # unwrapped `agent`
        assert "x-http-code" not in headers and not any(k.startswith("grpc-") for k in headers)
        assert "x-envoy-upstream-service-time" not in headers

        status, _, body = _call(conn, "POST", "/api/v1/agents", {"name": "taken", "type": "worker"})
        assert (status, body["code"]) == (409, 6), body

        # x-http-code from the service wins over the route's status (GetHealth's 503 works so).
        status, headers, body = _call(conn, "POST", "/api/v1/agents", {"name": "accepted", "type": "worker"})
        assert status == 202 and body["name"] == "accepted" and "x-http-code" not in headers, body

        status, _, body = _call(conn, "GET", "/api/v1/agents?type=worker&limit=5")
        assert status == 200 and [a["name"] for a in body] == ['x"},{"agents":[]', "y"], body
        assert body[0]["capabilities"] == ["a]b}c", 'd"e']

        # 204: no body, no content-type, and the connection stays usable
        for _ in range(2):
            status, headers, body = _call(conn, "DELETE", "/api/v1/agents/00000000-0000-4000-8000-000000000001")
            assert (status, body) == (204, None) and "content-type" not in headers and "content-length" not in headers

        status, headers, body = _call(conn, "GET", "/api/v1/agents/00000000-0000-4000-8000-000000000009")
        assert status == 404 and headers["content-type"] == "application/json"
        assert body["code"] == 5 and "not found" in body["message"]
        assert body["details"][0]["field_violations"][0]["field"] == "agent_id"  # not re-wrapped

        expected = {
            ("GET", "/api/v1/agents?type=bogus", None): (400, 3, "bogus"),
            ("GET", "/api/v1/agents?colour=blue", None): (400, 3, "colour"),
            ("POST", "/api/v1/agents", b'{"name": '): (400, 3, ""),
            ("GET", "/api/v1/nothing-here?x=1", None): (404, 5, "no route for GET /api/v1/nothing-here"),
            ("PUT", "/api/v1/agents", b"{}"): (404, 5, "no route for PUT /api/v1/agents"),
            ("GET", "/api/v1/health", None): (503, 14, "upstream connect error"),
        }
        for (method, path, raw), (want_status, want_code, needle) in expected.items():
            status, headers, body = _call(conn, method, path, raw)
            assert (status, body["code"]) == (want_status, want_code), (method, path, body)
            assert set(body) == {"code", "message", "details"} and body["message"], body
            assert needle in body["message"] and headers["content-type"] == "application/json", body
            if headers.get("connection") == "close":
                conn.close()

        status, headers, doc = _call(conn, "GET", "/api/v1/openapi.json")
        assert status == 200 and headers["content-type"] == "application/json" and doc["openapi"] == "3.1.0"
    finally:
        conn.close()


def test_envoy_refuses_large_rest_requests(gateway: str) -> None:
    for size in (limits.HTTP_MAX_BODY_BYTES + 1, 50 * 1024 * 1024):
        status, headers, body, sent = upload(gateway, "/api/v1/agents", size)
        assert (status, body["code"], headers["content-type"]) == (413, 8, "application/json"), body
        assert body["message"] == LIMIT_MESSAGES[413] and body["details"] == []
        assert sent < 20 * 1024 * 1024  # refused early, not after the whole body
    host, port = gateway.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        status, headers, body = _call(conn, "GET", "/api/v1/agents?name=" + "x" * (limits.HTTP_MAX_HEADERS_KB * 1024))
        assert (status, body["code"], body["message"]) == (431, 8, LIMIT_MESSAGES[431]), body
    finally:
        conn.close()
    # Just under the limit, the body reaches the service (the stub answers any name).
    status, _, body, _ = upload(gateway, "/api/v1/agents", limits.HTTP_MAX_BODY_BYTES - 64)
    assert status == 201 and len(body["name"]) > 4_000_000


def test_grpc_clients_pass_through(gateway: str) -> None:
    with grpc.insecure_channel(gateway) as channel:
        stub = registry_pb2_grpc.AgentRegistryServiceStub(channel)
        reply, call = stub.CreateAgent.with_call(registry_pb2.CreateAgentRequest(name="g"), timeout=10)
        assert reply.agent.name == "g"
        assert "x-http-code" not in dict(call.initial_metadata())  # the route's 201 is for REST only
        reply, call = stub.CreateAgent.with_call(registry_pb2.CreateAgentRequest(name="accepted"), timeout=10)
        assert ("x-http-code", "202") in call.initial_metadata()  # gRPC replies are left untouched
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetAgent(registry_pb2.GetAgentRequest(agent_id="x"), timeout=10)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert caught.value.details() == "agent x not found"  # plain text, not the JSON error shape


def test_streams_have_a_copy_of_their_services_cluster(rendered: Path) -> None:
    """streams.py: `<cluster>_streams` is the cluster under another name (same endpoints, health
    checks, outlier detection, balancing); every streaming method of the service routes to it."""
    config = load(rendered)
    found = {c["name"]: c for c in config["static_resources"]["clusters"]}
    for base, stream in STREAM_CLUSTERS.items():
        copy = dict(found[stream], name=base)
        copy["load_assignment"] = dict(copy["load_assignment"], cluster_name=base)
        assert copy == found[base]
    table = by_path_of(routes(config))
    for method in grpc_methods(descriptor_bytes()):
        if method.cluster in STREAM_CLUSTERS:
            cluster = table[method.path]["route"]["cluster"] if method.path in table else method.cluster
            assert cluster == (STREAM_CLUSTERS[method.cluster] if method.streaming else method.cluster), method.path
