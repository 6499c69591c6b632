"""The OpenAPI 3.1 document generated from the proto descriptor (gateway_http/openapi.py)."""

from __future__ import annotations

import importlib.metadata
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from gateway_http.openapi import VERSION, build_openapi, render_openapi, write_openapi
from gateway_http.openapi_tables import SUCCESS_STATUS

FDP = descriptor_pb2.FieldDescriptorProto
AGENT_TYPES = ["orchestrator", "worker", "critic", "judge", "trainer", "governor", "monitor", "integrator"]
AGENT_STATUSES = ["idle", "busy", "error", "offline"]
ERROR = {"$ref": "#/components/schemas/Error"}


@pytest.fixture(scope="module")
def descriptor() -> bytes:
    return files("ossa").joinpath("ossa.binpb").read_bytes()


@pytest.fixture(scope="module")
def doc(descriptor: bytes) -> dict[str, Any]:
    return build_openapi(descriptor)


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, verb, op) for path, item in doc["paths"].items() for verb, op in item.items()]


def test_header_and_server(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0"
    assert doc["info"] == {
        "title": "OSSA Platform API",
        "version": "0.1.9",
        "description": "Open Standards for Scalable Agents",
    }
    assert [s["url"] for s in doc["servers"]] == ["http://localhost:3100"]  # paths carry /api/v1
    assert importlib.metadata.version("ossa-platform") == VERSION


def test_paths_verbs_and_success_codes(doc: dict[str, Any]) -> None:
    found = {(verb.upper(), path): sorted(op["responses"]) for path, verb, op in operations(doc)}
    assert found == {
        ("POST", "/api/v1/agents"): ["201", "400", "409", "429", "500", "503"],
        ("GET", "/api/v1/agents"): ["200", "400", "429", "500", "503"],
        ("GET", "/api/v1/agents/{agent_id}"): ["200", "400", "404", "429", "500", "503"],
        ("DELETE", "/api/v1/agents/{agent_id}"): ["204", "400", "404", "429", "500", "503"],
        ("GET", "/api/v1/health"): ["200", "400", "500", "503"],
        ("POST", "/api/v1/workflows"): ["201", "400", "409", "429", "500", "503"],
        ("GET", "/api/v1/workflows"): ["200", "400", "429", "500", "503"],
        ("GET", "/api/v1/workflows/{workflow_id}"): ["200", "400", "404", "429", "500", "503"],
        ("POST", "/api/v1/workflows/{workflow_id}/publish"): ["200", "400", "404", "429", "500", "503"],
        ("POST", "/api/v1/workflows/{workflow_id}/deprecate"): ["200", "400", "404", "429", "500", "503"],
        ("POST", "/api/v1/orchestrate"): ["202", "400", "429", "500", "503"],
        ("POST", "/api/v1/orchestrate:batch"): ["202", "400", "429", "500", "503"],
        ("GET", "/api/v1/executions"): ["200", "400", "429", "500", "503"],
        ("GET", "/api/v1/executions/{execution_id}"): ["200", "400", "404", "429", "500", "503"],
        ("POST", "/api/v1/executions/{execution_id}/cancel"): ["200", "400", "404", "429", "500", "503"],
        ("GET", "/api/v1/executions/{execution_id}/tasks"): ["200", "400", "404", "429", "500", "503"],
        ("GET", "/api/v1/executions/{execution_id}/watch"): ["200", "400", "404", "429", "500", "503"],
        ("GET", "/api/v1/tasks/{task_id}"): ["200", "400", "404", "429", "500", "503"],
        ("POST", "/api/v1/tasks/{task_id}/approve"): ["200", "400", "404", "429", "500", "503"],
        ("POST", "/api/v1/tasks/{task_id}/reject"): ["200", "400", "404", "429", "500", "503"],
        ("GET", "/api/v1/agents/{agent_id}/card"): ["200", "400", "404", "429", "500", "503"],
        ("GET", "/.well-known/agent-card.json"): ["200", "400", "429", "500", "503"],
        ("POST", "/api/v1/metrics"): ["202", "400", "429", "500", "503"],
        ("GET", "/api/v1/metrics"): ["200", "400", "429", "500", "503"],
        ("POST", "/api/v1/auth/login"): ["200", "400", "401", "429", "500", "503"],
        ("POST", "/api/v1/auth/logout"): ["200", "400", "404", "429", "500", "503"],
        ("POST", "/api/v1/auth/api-keys"): ["201", "400", "409", "429", "500", "503"],
        ("GET", "/api/v1/auth/api-keys"): ["200", "400", "429", "500", "503"],
        ("DELETE", "/api/v1/auth/api-keys/{api_key_id}"): ["204", "400", "404", "429", "500", "503"],
        ("POST", "/api/v1/auth/tokens/{jti}/revoke"): ["204", "400", "404", "429", "500", "503"],
        ("POST", "/api/v1/agents/search"): ["200", "400", "429", "500", "503"],
        ("POST", "/api/v1/workflows/search"): ["200", "400", "429", "500", "503"],
        ("POST", "/api/v1/knowledge"): ["201", "400", "409", "429", "500", "503"],
        ("POST", "/api/v1/knowledge/search"): ["200", "400", "429", "500", "503"],
        ("DELETE", "/api/v1/knowledge/{document_id}"): ["204", "400", "404", "429", "500", "503"],
        ("POST", "/api/v1/search/reindex"): ["200", "400", "429", "500", "503"],
    }
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids)) and "AgentRegistryService_CreateAgent" in ids
    assert {t["name"] for t in doc["tags"]} == {
        "AgentRegistryService",
        "AuthService",
        "GatewayService",
        "MonitoringService",
        "OrchestratorService",
        "SearchService",
    }


def test_rpcs_without_http_rule_are_absent(doc: dict[str, Any]) -> None:
    text = json.dumps(doc)
    assert "/Heartbeat" not in text and "HeartbeatRequest" not in text


def test_register_agent(doc: dict[str, Any]) -> None:
    op = doc["paths"]["/api/v1/agents"]["post"]
    assert op["requestBody"]["required"] is True
    body = resolve(doc, op["requestBody"]["content"]["application/json"]["schema"])
    assert body["required"] == ["name", "type", "version"]
    assert set(body["properties"]) == {"name", "type", "version", "capabilities", "config", "metadata"}
    assert body["properties"]["type"]["enum"] == AGENT_TYPES
    created = op["responses"]["201"]["content"]["application/json"]["schema"]
    assert created["$ref"] == "#/components/schemas/Agent"  # response_body: "agent", unwrapped
    assert "summary" in op and "x-grpc-method" in op


def test_list_agents(doc: dict[str, Any]) -> None:
    op = doc["paths"]["/api/v1/agents"]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    assert list(params) == ["type", "status", "limit", "offset", "name"]
    assert all(p["in"] == "query" and p["required"] is False for p in params.values())
    assert params["type"]["schema"] == {"type": "string", "enum": AGENT_TYPES}
    assert params["status"]["schema"] == {"type": "string", "enum": AGENT_STATUSES}
    assert params["limit"]["schema"] == {"type": "integer", "format": "int32"}
    listed = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed["type"] == "array" and listed["items"] == {"$ref": "#/components/schemas/Agent"}
    assert "requestBody" not in op


def test_agent_by_id(doc: dict[str, Any]) -> None:
    item = doc["paths"]["/api/v1/agents/{agent_id}"]
    for verb in ("get", "delete"):
        (param,) = item[verb]["parameters"]
        assert param["name"] == "agent_id" and param["in"] == "path" and param["required"] is True
        assert param["schema"] == {"type": "string", "format": "uuid"}
    assert item["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Agent")
    assert "content" not in item["delete"]["responses"]["204"]


def test_health_documents_503_with_the_report(doc: dict[str, Any]) -> None:
    op = doc["paths"]["/api/v1/health"]["get"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/GetHealthResponse")
    unhealthy = op["responses"]["503"]["content"]["application/json"]["schema"]
    assert unhealthy["anyOf"] == [{"$ref": "#/components/schemas/GetHealthResponse"}, ERROR]


def test_metrics_ingest_and_query(doc: dict[str, Any]) -> None:
    item = doc["paths"]["/api/v1/metrics"]
    body = resolve(doc, item["post"]["requestBody"]["content"]["application/json"]["schema"])
    point = resolve(doc, body["properties"]["metrics"]["items"])
    # Both namings: name/value, and the spec's metric_name/metric_value (as the query says metric_name).
    fields = {"agent_id", "name", "value", "metric_name", "metric_value", "labels", "timestamp"}
    assert set(point["properties"]) == fields
    assert point["properties"]["metric_name"]["type"] == point["properties"]["name"]["type"] == "string"
    assert point["properties"]["metric_value"] == {
        "type": "number",
        "format": "double",
        "description": point["properties"]["metric_value"]["description"],
    }
    assert point["properties"]["labels"] == {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": point["properties"]["labels"]["description"],
    }
    params = {p["name"]: p["schema"] for p in item["get"]["parameters"]}
    assert list(params) == ["metric_name", "agent_id", "from", "to", "window", "agg"]
    assert params["from"] == params["to"] == {"type": "string", "format": "date-time"}
    listed = item["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed["type"] == "array" and listed["items"] == {"$ref": "#/components/schemas/MetricBucket"}
    text = json.dumps(doc)
    assert "/PushMetrics" not in text and "PushMetricsRequest" not in text  # client streaming: gRPC only


def test_agent_schema_follows_the_spec(doc: dict[str, Any]) -> None:
    agent = doc["components"]["schemas"]["Agent"]
    assert agent["type"] == "object"
    assert agent["required"] == ["id", "name", "type", "version", "status"]
    props = agent["properties"]
    assert props["id"]["type"] == "string" and props["id"]["format"] == "uuid"
    assert props["type"]["enum"] == AGENT_TYPES and props["status"]["enum"] == AGENT_STATUSES
    assert props["capabilities"]["type"] == "array" and props["capabilities"]["items"] == {"type": "string"}
    assert props["config"]["type"] == props["metadata"]["type"] == "object"
    for stamp in ("created_at", "updated_at", "last_heartbeat"):
        assert props[stamp]["type"] == "string" and props[stamp]["format"] == "date-time"
    assert props["name"]["description"].startswith("name is unique")  # comments become descriptions


def test_one_error_shape(doc: dict[str, Any]) -> None:
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["code", "message", "details"]
    assert error["properties"]["code"]["type"] == "integer"
    assert error["properties"]["message"]["type"] == "string"
    assert error["properties"]["details"]["type"] == "array"
    for _, _, op in operations(doc):
        for code, response in op["responses"].items():
            if code.startswith(("4", "5")) and "$ref" in response:
                assert resolve(doc, response)["content"]["application/json"]["schema"] == ERROR


def test_only_reachable_messages_are_components(doc: dict[str, Any]) -> None:
    assert set(doc["components"]["schemas"]) == {
        "Agent",
        "ComponentHealth",
        "CreateAgentRequest",
        "Error",
        "GetHealthResponse",
        "Workflow",
        "CreateWorkflowRequest",
        "StartExecutionRequest",
        "StartExecutionResponse",
        "StartExecutionsRequest",
        "StartExecutionsResponse",
        "Execution",
        "WatchExecutionResponse",
        "Budget",
        "AgentCard",
        "AgentCapabilities",
        "AgentProvider",
        "AgentSkill",
        "SecurityScheme",
        "Task",
        "TaskAttempt",
        "IngestMetricsRequest",
        "IngestMetricsResponse",
        "MetricPoint",
        "PointRejection",
        "MetricBucket",
        "ApiKey",
        "LoginRequest",
        "LoginResponse",
        "LogoutRequest",
        "LogoutResponse",
        "CreateApiKeyRequest",
        "CreateApiKeyResponse",
        "SearchAgentsRequest",
        "SearchAgentsResponse",
        "AgentMatch",
        "SearchWorkflowsRequest",
        "SearchWorkflowsResponse",
        "WorkflowMatch",
        "AddKnowledgeRequest",
        "AddKnowledgeResponse",
        "SearchKnowledgeRequest",
        "SearchKnowledgeResponse",
        "KnowledgeMatch",
        "KnowledgeChunk",
        "ReindexRequest",
        "ReindexResponse",
    }


def test_rate_limit_response_documents_retry_after(doc: dict[str, Any]) -> None:
    too_many = doc["components"]["responses"]["TooManyRequests"]
    assert too_many["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}
    assert "429" not in doc["paths"]["/api/v1/health"]["get"]["responses"]  # health checks are never limited
    login = doc["paths"]["/api/v1/auth/login"]["post"]
    assert resolve(doc, login["requestBody"]["content"]["application/json"]["schema"])["required"] == ["api_key"]


def test_document_is_valid_openapi_31(doc: dict[str, Any]) -> None:
    OPENAPI_31_VALIDATOR.validate(doc)
    for schema in doc["components"]["schemas"].values():
        jsonschema_rs.meta.validate(schema)
    loaded = schemathesis.openapi.from_dict(doc)
    labels = {result.ok().label for result in loaded.get_all_operations()}
    assert labels == {f"{verb.upper()} {path}" for path, verb, _ in operations(doc)}


def test_every_ref_resolves(doc: dict[str, Any]) -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert refs
    for ref in refs:
        assert ref.startswith("#/")
        resolve(doc, {"$ref": ref})  # KeyError if dangling


def test_committed_document_is_current(descriptor: bytes, tmp_path: Path) -> None:
    committed = files("ossa").joinpath("openapi.json").read_text(encoding="utf-8")
    assert render_openapi(descriptor) == committed, "run: python scripts/gen_protos.py"
    source = tmp_path / "ossa.binpb"
    source.write_bytes(descriptor)
    write_openapi(source, tmp_path / "openapi.json")
    assert (tmp_path / "openapi.json").read_text(encoding="utf-8") == committed
    assert committed.endswith("}\n") and committed.startswith("{\n  ")


# A synthetic service exercises the mapping rules the real protos do not use (yet). ---------------


def _field(name: str, number: int, kind: int, **kw: Any) -> descriptor_pb2.FieldDescriptorProto:
    return FDP(name=name, number=number, type=kind, label=kw.pop("label", FDP.LABEL_OPTIONAL), **kw)


def _synthetic() -> bytes:
    f = descriptor_pb2.FileDescriptorProto(name="ossa/things/v1/things.proto", package="ossa.things.v1")
    color = f.enum_type.add(name="Color")
    color.value.add(name="COLOR_UNSPECIFIED", number=0)
    color.value.add(name="red", number=1)
    thing = f.message_type.add(name="Thing")
    thing.field.extend(
        [
            _field("thing_id", 1, FDP.TYPE_STRING),
            _field("count", 2, FDP.TYPE_INT64),
            _field("ratio", 3, FDP.TYPE_DOUBLE),
            _field("color", 4, FDP.TYPE_ENUM, type_name=".ossa.things.v1.Color"),
            _field(
                "labels", 5, FDP.TYPE_MESSAGE, type_name=".ossa.things.v1.Thing.LabelsEntry", label=FDP.LABEL_REPEATED
            ),
            _field("parts", 6, FDP.TYPE_MESSAGE, type_name=".ossa.things.v1.Thing", label=FDP.LABEL_REPEATED),
            _field("blob", 7, FDP.TYPE_BYTES),
        ]
    )
    entry = thing.nested_type.add(name="LabelsEntry")
    entry.options.map_entry = True
    entry.field.extend([_field("key", 1, FDP.TYPE_STRING), _field("value", 2, FDP.TYPE_STRING)])
    create = f.message_type.add(name="CreateThingRequest")
    create.field.extend([_field("thing", 1, FDP.TYPE_MESSAGE, type_name=".ossa.things.v1.Thing")])
    update = f.message_type.add(name="UpdateThingRequest")
    update.field.extend([_field("thing_id", 1, FDP.TYPE_STRING), _field("name", 2, FDP.TYPE_STRING)])
    find = f.message_type.add(name="FindThingsRequest")
    find.field.extend(
        [
            _field("colors", 1, FDP.TYPE_ENUM, type_name=".ossa.things.v1.Color", label=FDP.LABEL_REPEATED),
            _field("like", 2, FDP.TYPE_MESSAGE, type_name=".ossa.things.v1.Thing"),
        ]
    )
    service = f.service.add(name="ThingService")
    for name, verb, path, body, request in [
        ("CreateThing", "post", "/v1/things", "thing", "CreateThingRequest"),
        ("UpdateThing", "patch", "/v1/things/{thing_id}", "*", "UpdateThingRequest"),
        ("FindThings", "get", "/v1/things", "", "FindThingsRequest"),
        ("Orchestrate", "post", "/v1/orchestrate", "*", "UpdateThingRequest"),
    ]:
        method = service.method.add(
            name=name, input_type=f".ossa.things.v1.{request}", output_type=".ossa.things.v1.Thing"
        )
        rule = method.options.Extensions[annotations_pb2.http]
        setattr(rule, verb, path)
        rule.body = body
    return descriptor_pb2.FileDescriptorSet(file=[f]).SerializeToString()


def test_mapping_rules_on_a_synthetic_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SUCCESS_STATUS, "ossa.things.v1.ThingService.Orchestrate", 202)
    doc = build_openapi(_synthetic())
    OPENAPI_31_VALIDATOR.validate(doc)
    paths = doc["paths"]
    assert sorted(paths["/v1/things"]["post"]["responses"]) == ["201", "400", "409", "429", "500", "503"]
    assert "202" in paths["/v1/orchestrate"]["post"]["responses"]
    assert "200" in paths["/v1/things/{thing_id}"]["patch"]["responses"]
    # body: "thing" -> that field's schema; body: "*" with a path field -> the other fields
    created = paths["/v1/things"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert created == {"$ref": "#/components/schemas/Thing"}
    patched = paths["/v1/things/{thing_id}"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(patched["properties"]) == {"name"}
    # query: repeated enums explode; nested messages flatten to dotted names, maps/Struct skipped
    params = {p["name"]: p for p in paths["/v1/things"]["get"]["parameters"]}
    assert params["colors"]["schema"] == {"type": "array", "items": {"type": "string", "enum": ["red"]}}
    assert params["colors"]["explode"] is True
    assert {"like.thing_id", "like.count", "like.color"} <= set(params) and "like.labels" not in params
    thing = doc["components"]["schemas"]["Thing"]["properties"]
    assert thing["count"] == {"type": "string", "format": "int64"}
    assert thing["ratio"] == {"type": "number", "format": "double"}
    assert thing["labels"] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert thing["parts"] == {"type": "array", "items": {"$ref": "#/components/schemas/Thing"}}
    assert thing["blob"] == {"type": "string", "contentEncoding": "base64"}
    assert thing["color"] == {"type": "string", "enum": ["red"]}
